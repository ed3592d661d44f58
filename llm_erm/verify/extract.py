"""Find the candidate program in a model's answer.

In order, after dropping `<think>...</think>` blocks: the whole text as a JSON object with a string `code`;
else a JSON object in the text that has one; else a fenced python block; else a bare top-level `def` with
the code around it. Where there are several JSON objects or fenced blocks, the program is the one that
defines the function the scorer calls: the last one that defines `f`, else the last one with a top-level
`def` (a later usage example such as `def check(): ...` does not replace the solution). None when there
is no code. Nothing here executes the text; parsing with `ast` is the most it does.

Every step is linear in the answer (plain scans, regular expressions without nested repetition, a bounded
number of JSON decodes and parses), and answers longer than MAX_ANSWER_CHARS are cut to their last
MAX_ANSWER_CHARS characters (where an answer's code is): the cost per answer is bounded.
"""

import ast
import json
import re

MAX_ANSWER_CHARS = 1_000_000
PYTHON_TAGS = ("", "python", "python3", "py", "py3")
# Lenient: control characters (the raw newlines models put in code strings) are accepted inside strings.
LENIENT_JSON = json.JSONDecoder(strict=False)
OBJECT_START = re.compile(r'\{\s*"')  # where a JSON object with a key can begin
# Each failed decode costs O(position) (the error computes a line number), so the number of starts
# tried is bounded; the nearest to the end are tried, which is where the answer is.
MAX_JSON_STARTS = 200
MAX_TRIMS = 20  # parses when cutting prose off the end of a bare def
FENCE = re.compile(r"[ \t]*```[ \t]*([\w+.-]*)")  # a fence line and its info string's first word
DEFINES_F = re.compile(r"^(?:async[ \t]+)?def[ \t]+f[ \t]*\(|^f[ \t]*(?::[^=\n]*)?=(?!=)", re.MULTILINE)
TOP_LEVEL_DEF = re.compile(r"^(?:async[ \t]+)?def[ \t]", re.MULTILINE)
# A line that looks like Python next to a bare def. One character class then a literal: a failed match
# backtracks once over the line, never quadratically (no two adjacent repeats that can share a space).
CODE_LINE = re.compile(r"(?:def |async def |class |@|import |from |[A-Za-z_][\w, \t]*=(?!=))")


def extract_code(text: str) -> str | None:
    """The program in `text`, or None when it holds no code at all."""
    text = drop_thinking(text)
    if len(text) > MAX_ANSWER_CHARS:
        text = text[-MAX_ANSWER_CHARS:]
    for find in (_whole_json, _json_in_text, _fenced_python, _bare_def):
        code = find(text)
        if code is not None and code.strip():
            return code
    return None


def drop_thinking(text: str) -> str:
    """Without its <think>...</think> blocks; a close without an opening drops everything before it, an
    opening never closed (a truncated answer) drops everything after it."""
    kept, position = [], 0
    while True:
        start = text.find("<think>", position)
        if start == -1:
            kept.append(text[position:])
            break
        kept.append(text[position:start])
        end = text.find("</think>", start + len("<think>"))
        if end == -1:
            break
        position = end + len("</think>")
    text = "".join(kept)
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    return text


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
    try:
        value = LENIENT_JSON.decode(text.strip())
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's stack
        return None
    return choose(_codes_in(value))


def _json_in_text(text: str) -> str | None:
    """The JSON objects with code in the text, found by trying object starts from the end backwards (a
    start inside an object already decoded is skipped: its code was collected with it)."""
    last_key = text.rfind('"code"')
    if last_key == -1:
        return None
    starts = [m.start() for m in OBJECT_START.finditer(text, 0, last_key + 1)]
    found: list[tuple[int, list[str]]] = []
    covered_from = len(text) + 1  # starts at or after the start of a decoded object are inside one
    for start in reversed(starts[-MAX_JSON_STARTS:]):
        try:
            value, end = LENIENT_JSON.raw_decode(text, start)
        except (ValueError, RecursionError):
            continue
        codes = _codes_in(value)
        if not codes:
            continue
        if end > covered_from:  # this object encloses the ones found after it: it replaces them
            found = [(s, c) for s, c in found if s >= end]
        found.append((start, codes))
        covered_from = start
    programs = [code for _, codes in sorted(found) for code in codes]
    return choose(programs)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(tag, body) of every fenced block, by one scan over the lines."""
    blocks, tag, body = [], None, []
    for line in text.splitlines(keepends=True):
        fence = FENCE.match(line)
        if tag is None:
            if fence:
                tag, body = fence.group(1).lower(), []
        elif fence:
            blocks.append((tag, "".join(body)))
            tag = None
        else:
            body.append(line)
    return blocks


def _fenced_python(text: str) -> str | None:
    """The python (or untagged) block the scorer would call (see `choose`); without any def, the last
    block tagged python (an untagged block without a def is more likely data or output than code)."""
    blocks = [(tag, body) for tag, body in fenced_blocks(text) if tag in PYTHON_TAGS]
    with_def = [body for _, body in blocks if TOP_LEVEL_DEF.search(body) or DEFINES_F.search(body)]
    if with_def:
        return choose(with_def)
    tagged = [body for tag, body in blocks if tag]
    return tagged[-1] if tagged else None


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
    if _syntax_error_line(text) is None:
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
    for _ in range(MAX_TRIMS):
        code = "\n".join(region[:end]).strip("\n") + "\n"
        line = _syntax_error_line(code)
        if line is None:
            return code
        # Cut before the error's line; an error reported at the very end (or nowhere) cuts one line.
        end = min(end - 1, line - 1) if 0 < line <= end else end - 1
        if end < keep:
            break
    return "\n".join(region).strip("\n") + "\n"
