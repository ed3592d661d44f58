"""Find the candidate program in a model's answer (SPEC section 7).

In order, after dropping `<think>...</think>` blocks: the whole text as a JSON object with a string `code`;
else the last JSON object in the text that has one (raw newlines inside its strings tolerated); else a
fenced python block; else a bare top-level `def` with the code around it. None when there is no code.
Nothing here executes the text; parsing with `ast` is the most it does.
"""

import ast
import json
import re

THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
PYTHON_TAGS = ("", "python", "python3", "py", "py3")
# Lenient: control characters (the raw newlines models put in code strings) are accepted inside strings.
LENIENT_JSON = json.JSONDecoder(strict=False)
OBJECT_START = re.compile(r'\{\s*"')  # where a JSON object with a key can begin
# Each failed decode costs O(position) (the error computes a line number), so the number of starts
# tried is bounded; the nearest to the end are tried, which is where the answer is.
MAX_JSON_STARTS = 500
CODE_LINE = re.compile(r"(def |async def |class |@|import |from |[A-Za-z_][\w, ]*\s*=[^=])")


def extract_code(text: str) -> str | None:
    """The program in `text`, or None when it holds no code at all."""
    text = drop_thinking(text)
    for find in (_whole_json, _last_json_with_code, _fenced_python, _bare_def):
        code = find(text)
        if code is not None and code.strip():
            return code
    return None


def drop_thinking(text: str) -> str:
    text = THINK_BLOCK.sub("", text)
    if "</think>" in text:  # the opening tag was not echoed: everything before the close is thinking
        text = text.rsplit("</think>", 1)[1]
    if "<think>" in text:  # never closed (a truncated answer): the rest is thinking
        text = text.split("<think>", 1)[0]
    return text


def _code_in(value: object) -> str | None:
    """The string `code` of a JSON object, else of the last nested object that has one."""
    if isinstance(value, dict) and isinstance(value.get("code"), str):
        return value["code"]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    found = None
    for item in items:
        found = _code_in(item) or found
    return found


def _whole_json(text: str) -> str | None:
    try:
        return _code_in(LENIENT_JSON.decode(text.strip()))
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's stack
        return None


def _last_json_with_code(text: str) -> str | None:
    """Tries object starts from the end backwards: the first that decodes and has code is the last
    such object in the text (an object nested in a larger one included)."""
    last_key = text.rfind('"code"')
    if last_key == -1:
        return None
    starts = [m.start() for m in OBJECT_START.finditer(text, 0, last_key + 1)]
    for start in reversed(starts[-MAX_JSON_STARTS:]):
        try:
            code = _code_in(LENIENT_JSON.raw_decode(text, start)[0])
        except (ValueError, RecursionError):
            continue
        if code is not None:
            return code
    return None


def _fenced_python(text: str) -> str | None:
    """The last python (or untagged) fenced block that defines a function, else the last block tagged
    python (an untagged block without a def is more likely data or output than code)."""
    blocks = [(tag.lower(), body) for tag, body in FENCE.findall(text) if tag.lower() in PYTHON_TAGS]
    with_def = [body for _, body in blocks if re.search(r"^\s*(async\s+)?def\s", body, re.MULTILINE)]
    if with_def:
        return with_def[-1]
    tagged = [body for tag, body in blocks if tag]
    return tagged[-1] if tagged else None


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _bare_def(text: str) -> str | None:
    """A top-level `def` in prose: the whole text when it is Python, else the code-looking lines around
    the first `def`, trimmed at the end until they parse (kept as they are if they never do, so that
    a broken program is reported as a syntax error rather than as no code)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(("def ", "async def "))]
    if not starts:
        return None
    if _parses(text):
        return text
    begin = starts[0]
    while begin > 0 and (not lines[begin - 1].strip() or CODE_LINE.match(lines[begin - 1])):
        begin -= 1
    stop = starts[0] + 1
    while stop < len(lines) and (not lines[stop].strip() or lines[stop][0] in " \t#)]}" or CODE_LINE.match(lines[stop])):
        stop += 1
    region = lines[begin:stop]
    for end in range(len(region), starts[0] - begin, -1):
        code = "\n".join(region[:end]).strip("\n") + "\n"
        if _parses(code):
            return code
    return "\n".join(region).strip("\n") + "\n"
