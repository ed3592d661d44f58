"""Find the candidate program in a model's answer.

In order, after dropping `<think>...</think>` blocks (tags outside fenced code and not inside a quoted
string: code may well mention "<think>"): the whole text as a JSON object with a string `code`; else a
fenced ```json block that has one; else a fenced python block; else a JSON object with code in the prose
outside fenced blocks (so a dict literal inside a python block is never taken for the answer); else a
bare top-level `def` with the code around it. Where there are several JSON objects or fenced blocks, the
program is the one that defines the function the scorer calls: the last one that defines `f`, else the
last one with a top-level `def` (a later usage example such as `def check(): ...` does not replace the
solution). None when there is no code. Nothing here executes the text; parsing with `ast` is the most it
does.

Every step is linear in the answer: plain scans, regular expressions without nested repetition, JSON
decoded only over the spans of balanced braces (outermost first, each character decoded a bounded number
of times), and parses of at most MAX_PARSE_CHARS characters within a total budget. Answers over
MAX_ANSWER_CHARS never get here (score.py refuses them as `too_large`); called directly on one, the text
is cut to its last MAX_ANSWER_CHARS characters.
"""

import ast
import bisect
import json
import re

# The size bound of an answer, checked before anything parses it. The paper's GPT-5 programs are a few KB
# (2-6 KB with their prose); the output cap of a call (20k tokens at ~4 characters a token) is ~80 KB.
# Three times that still leaves room for verbose answers, and keeps the orchestrator's work per answer
# bounded (well under 1 s of CPU for extraction and sanitising together).
MAX_ANSWER_CHARS = 256_000
MAX_PARSE_CHARS = 64_000  # parsing a larger region (bare-def trimming) is not attempted
PARSE_BUDGET = 4 * MAX_PARSE_CHARS  # characters all the trimming parses of one answer may read together
PYTHON_TAGS = ("", "python", "python3", "py", "py3")
# Lenient: control characters (the raw newlines models put in code strings) are accepted inside strings.
LENIENT_JSON = json.JSONDecoder(strict=False)
OBJECT_START = re.compile(r'\{\s*"')  # where a JSON object with a key can begin
# A JSON string (raw newlines allowed, as LENIENT_JSON does) or a brace: the tokens of brace matching.
BRACE_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}]', re.DOTALL)
MAX_TRIMS = 20  # parses when cutting prose off the end of a bare def
FENCE = re.compile(r"[ \t]*```[ \t]*([\w+.-]*)")  # a fence line and its info string's first word
DEFINES_F = re.compile(r"^(?:async[ \t]+)?def[ \t]+f[ \t]*\(|^f[ \t]*(?::[^=\n]*)?=(?!=)", re.MULTILINE)
TOP_LEVEL_DEF = re.compile(r"^(?:async[ \t]+)?def[ \t]", re.MULTILINE)
# A line that looks like Python next to a bare def. One character class then a literal: a failed match
# backtracks once over the line, never quadratically (no two adjacent repeats that can share a space).
CODE_LINE = re.compile(r"(?:def |async def |class |@|import |from |[A-Za-z_][\w, \t]*=(?!=))")
LOOKS_LIKE_CODE = re.compile(r"\bdef[ \t]|\blambda\b|^[ \t]*f[ \t]*=|\breturn\b", re.MULTILINE)
THINK_TAG = re.compile(r"</?think>")
QUOTES = "\"'\\`"


def extract_code(text: str) -> str | None:
    """The program in `text`, or None when it holds no code at all."""
    if len(text) > MAX_ANSWER_CHARS:
        text = text[-MAX_ANSWER_CHARS:]
    text = drop_thinking(text)
    for find in (_whole_json, _fenced_json, _fenced_python, _whole_python, _json_in_prose, _bare_def):
        code = find(text)
        if code is not None and code.strip():
            return code
    return None


def _counts(line: str, match: re.Match) -> bool:
    """A think tag counts unless it sits in a quoted string ("<think>" in code or in JSON)."""
    before = line[match.start() - 1] if match.start() else ""
    after = line[match.end()] if match.end() < len(line) else ""
    quoted = before != "" and before in QUOTES and after != "" and after in QUOTES
    return not quoted


def drop_thinking(text: str) -> str:
    """Without its <think>...</think> blocks; a close without an opening drops everything before it, an
    opening never closed (a truncated answer) drops everything after it. Tags inside fenced code blocks
    or between quotes are text, not tags. One scan over the lines."""
    kept: list[str] = []
    thinking = fenced = False
    for line in text.splitlines(keepends=True):
        if not thinking and FENCE.match(line):
            fenced = not fenced
            kept.append(line)
            continue
        if fenced:
            kept.append(line)
            continue
        position = 0
        for match in THINK_TAG.finditer(line):
            if not _counts(line, match):
                continue
            if match.group() == "<think>":
                if not thinking:
                    kept.append(line[position:match.start()])
                    thinking = True
            elif thinking:
                thinking = False
            else:
                kept = []  # a close without an opening: everything before it was thinking
            position = match.end()
        if not thinking:
            kept.append(line[position:])
    return "".join(kept)


def choose(programs: list[str]) -> str | None:
    """The program the scorer would call: the last that defines `f`, else the last with a top-level def,
    else the last."""
    for pattern in (DEFINES_F, TOP_LEVEL_DEF):
        matching = [code for code in programs if pattern.search(code)]
        if matching:
            return matching[-1]
    return programs[-1] if programs else None


def _codes_in(value: object) -> list[str]:
    """Every string `code` of the JSON objects in `value`, in document order (iterative: no recursion)."""
    found, pending = [], [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if isinstance(item.get("code"), str):
                found.append(item["code"])
            pending.extend(reversed([v for k, v in item.items() if k != "code"]))
        elif isinstance(item, list):
            pending.extend(reversed(item))
    return found


def _whole_json(text: str) -> str | None:
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        value = LENIENT_JSON.decode(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's stack
        return None
    return choose(_codes_in(value))


def _brace_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every balanced {...} in `text`, outside JSON strings, sorted by start (one scan)."""
    spans, open_at = [], []
    for match in BRACE_TOKEN.finditer(text):
        char = text[match.start()]
        if char == "{":
            open_at.append(match.start())
        elif char == "}" and open_at:
            spans.append((open_at.pop(), match.end()))
    spans.sort()
    return spans


def _json_objects(text: str) -> list[str]:
    """The code of the JSON objects in `text` that have one, in document order. Only balanced spans that
    start like an object and hold a "code" key are decoded, outermost first; the spans inside one that
    decoded are skipped (its code was collected with it), and all decodes together read at most a few
    times the text: linear, however the braces nest."""
    keys = [m.start() for m in re.finditer('"code"', text)]
    if not keys:
        return []
    budget = 4 * len(text) + 1024
    programs, covered_to = [], -1
    for start, end in _brace_spans(text):
        if start < covered_to or not OBJECT_START.match(text, start):
            continue
        first_key = bisect.bisect_left(keys, start)
        if first_key == len(keys) or keys[first_key] >= end:
            continue  # no "code" key inside
        if budget < end - start:
            break
        budget -= end - start
        try:
            value = LENIENT_JSON.decode(text[start:end])
        except (ValueError, RecursionError):
            continue
        codes = _codes_in(value)
        if codes:
            programs += codes
            covered_to = end
    return programs


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(tag, body) of every fenced block, by one scan over the lines."""
    blocks, _ = _split_fences(text)
    return blocks


def _split_fences(text: str) -> tuple[list[tuple[str, str]], str]:
    """(tag, body) of every fenced block, and the text outside them, by one scan over the lines."""
    blocks, prose, tag, body = [], [], None, []
    for line in text.splitlines(keepends=True):
        fence = FENCE.match(line)
        if tag is None:
            if fence:
                tag, body = fence.group(1).lower(), []
            else:
                prose.append(line)
        elif fence:
            blocks.append((tag, "".join(body)))
            tag = None
        else:
            body.append(line)
    if tag is not None:  # an unclosed fence at the end of a truncated answer
        blocks.append((tag, "".join(body)))
    return blocks, "".join(prose)


def _fenced_json(text: str) -> str | None:
    programs = [code for tag, body in fenced_blocks(text)
                if tag in ("json", "jsonc", "json5") or (tag == "" and body.lstrip().startswith("{"))
                for code in _json_objects(body)]
    return choose(programs)


def _fenced_python(text: str) -> str | None:
    """The python (or untagged) block the scorer would call (see `choose`); without any def, the last
    block tagged python (an untagged block without a def is more likely data or output than code)."""
    blocks = [(tag, body) for tag, body in fenced_blocks(text) if tag in PYTHON_TAGS]
    with_def = [body for _, body in blocks if TOP_LEVEL_DEF.search(body) or DEFINES_F.search(body)]
    if with_def:
        return choose(with_def)
    tagged = [body for tag, body in blocks if tag]
    return tagged[-1] if tagged else None


def _whole_python(text: str) -> str | None:
    """The whole text, when it is a Python program with a def (its dict literals are not answers)."""
    if len(text) > MAX_PARSE_CHARS or not (TOP_LEVEL_DEF.search(text) or DEFINES_F.search(text)):
        return None
    return text if _syntax_error_line(text) is None else None


def _json_in_prose(text: str) -> str | None:
    """JSON objects with code in the text outside fenced blocks; only values that look like a program
    count ({"code": "parity"} in prose is a word, not an answer)."""
    programs = [code for code in _json_objects(_split_fences(text)[1]) if LOOKS_LIKE_CODE.search(code)]
    return choose(programs)


def _syntax_error_line(code: str) -> int | None:
    """None when `code` parses, else the 1-based line of the error (0 when unknown)."""
    try:
        ast.parse(code)
    except SyntaxError as exc:
        return exc.lineno or 0
    except (ValueError, RecursionError, MemoryError):
        return 0
    return None


def _bare_def(text: str) -> str | None:
    """A top-level `def` in prose: the whole text when it is Python, else the code-looking lines around
    the first `def`, cut before the line of the syntax error while that leaves the def (a bounded number
    of parses); kept as they are if they never parse, so that a broken program is reported as a syntax
    error rather than as no code."""
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith(("def ", "async def "))), None)
    if first is None:
        return None
    if len(text) <= MAX_PARSE_CHARS and _syntax_error_line(text) is None:
        return text
    begin = first
    while begin > 0 and (not lines[begin - 1].strip() or CODE_LINE.match(lines[begin - 1])):
        begin -= 1
    stop = first + 1
    while stop < len(lines) and (not lines[stop].strip() or lines[stop][0] in " \t#)]}" or CODE_LINE.match(lines[stop])):
        stop += 1
    region = lines[begin:stop]
    keep = first - begin + 1  # never cut the def line itself
    end = len(region)
    budget = PARSE_BUDGET
    for _ in range(MAX_TRIMS):
        code = "\n".join(region[:end]).strip("\n") + "\n"
        if len(code) > min(MAX_PARSE_CHARS, budget):
            break  # too large to trim by parsing: kept as it is
        budget -= len(code)
        line = _syntax_error_line(code)
        if line is None:
            return code
        # Cut before the error's line; an error reported at the very end (or nowhere) cuts one line.
        end = min(end - 1, line - 1) if 0 < line <= end else end - 1
        if end < keep:
            break
    return "\n".join(region).strip("\n") + "\n"
