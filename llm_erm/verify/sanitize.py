"""Clean a candidate program without changing what it does (on by default; recorded in every row).

An outer markdown fence, comments and docstrings go. The program is parsed, its docstrings removed from
the tree and the tree printed back (`ast.unparse`, which drops comments); the result is kept only when
it parses back to exactly that tree, so the code that runs is the same.

Docstrings and line numbers are observable by a program that introspects itself, in more ways than any
list can name (`__doc__`, `getattr` or `operator.attrgetter` with a computed name, `doctest`, `inspect`,
`str.format` with "{0.__doc__}", a `match` class pattern, frames, tracebacks, ...). So docstrings are
dropped only when the program provably cannot see them: it imports only modules known not to read
docstrings or line numbers (SAFE_MODULES), names none of the builtins that reach attributes by a
computed name or see frames (getattr, vars, globals, eval, help, ...), touches no attribute or dunder
through which a docstring, a code object, a frame or a line number is reached, and no string constant
names a dunder. Anything else is kept exactly as it is (minus the fence), in doubt. Code that does not
parse keeps its text (minus the fence): the sandbox then reports its syntax error. Programs over
MAX_PARSE_CHARS are not rewritten, so the orchestrator's cost per program is bounded (about 0.1 s).
"""

import ast

PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)
MAX_PARSE_CHARS = 32_000  # GPT-5 programs are a few KB; larger ones run as written
# Modules that never read a docstring or a line number of the program's own objects on its behalf.
SAFE_MODULES = frozenset({
    "math", "cmath", "re", "itertools", "collections", "string", "heapq", "bisect", "operator", "functools",
    "statistics", "fractions", "decimal", "random", "hashlib", "zlib", "binascii", "array", "struct",
    "numbers", "typing", "unicodedata", "sys", "numpy", "copy", "datetime", "calendar",
})
# Builtins (and names a star import could bring) that reach attributes by a computed name, evaluate
# text, or see frames and namespaces.
UNSAFE_NAMES = frozenset({
    "globals", "locals", "vars", "getattr", "hasattr", "setattr", "delattr", "help", "eval", "exec",
    "compile", "__import__", "breakpoint", "attrgetter", "methodcaller",
})
SAFE_DUNDER_NAMES = frozenset({"__name__"})  # `if __name__ == "__main__":`
# Harmless special methods a program may call or define by name (none of them reaches a docstring).
SAFE_DUNDER_ATTRIBUTES = frozenset({
    "__init__", "__len__", "__iter__", "__next__", "__contains__", "__getitem__", "__setitem__", "__eq__",
    "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__add__", "__sub__", "__mul__", "__mod__",
    "__and__", "__or__", "__xor__", "__bool__", "__int__", "__index__", "__call__", "__name__",
})
# Attributes through which a docstring, a code object, a frame or a line number is reached, or
# attributes are read by a computed name.
UNSAFE_ATTRIBUTES = frozenset({
    "f_lineno", "f_code", "f_back", "f_locals", "f_globals", "tb_lineno", "tb_frame", "tb_next", "co_consts",
    "co_firstlineno", "co_lnotab", "co_lines", "co_positions", "co_linetable", "_getframe", "exc_info",
    "currentframe", "getdoc", "getsource", "getsourcelines", "getframeinfo",
    "extract_stack", "extract_tb", "format_exc", "format_exception", "print_exc", "settrace", "setprofile",
    "getcomments", "lineno", "attrgetter", "methodcaller", "format_map", "Formatter",
    "get_type_hints", "ForwardRef", "info", "source", "lookfor", "add_docstring", "add_newdoc", "doc",
    "update_wrapper", "wraps", "monitoring", "_current_frames", "last_traceback", "last_exc",
})
# Attributes of frames, code objects, generators, coroutines and tracebacks, all of them.
UNSAFE_PREFIXES = ("f_", "co_", "gi_", "cr_", "ag_", "tb_")


def sanitize_code(code: str) -> str:
    """`code` without an outer fence, comments and docstrings (as it is, when that could change it)."""
    clean = try_sanitize(code)
    return clean if clean is not None else strip_outer_fence(code)


def try_sanitize(code: str) -> str | None:
    """The sanitised code, or None when it is kept as it is (it does not parse, it is too large, it could
    observe its docstrings or line numbers, or printing it back would change its tree)."""
    code = strip_outer_fence(code)
    if len(code) > MAX_PARSE_CHARS:
        return None
    try:
        tree = ast.parse(code)
        if introspects(tree):
            return None
        _drop_docstrings(tree)
        clean = ast.unparse(tree) + "\n"
        if ast.dump(ast.parse(clean)) != ast.dump(tree):
            return None
    except PARSE_ERRORS:
        return None
    return clean


def _unsafe_attribute(name: str) -> bool:
    dunder = name.startswith("__") and name.endswith("__")
    return name in UNSAFE_ATTRIBUTES or name.startswith(UNSAFE_PREFIXES) or (
        dunder and name not in SAFE_DUNDER_ATTRIBUTES)


def introspects(tree: ast.AST) -> bool:
    """Whether the program could see its own docstrings, code objects or line numbers (True unless the
    tree proves it cannot: see the module's docstring)."""
    docstrings = {id(node) for node in _docstring_nodes(tree)}
    formats = field_like = False  # str.format reads attributes named in its fields ("{0.__doc__}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id in UNSAFE_NAMES or (node.id.startswith("__") and node.id not in SAFE_DUNDER_NAMES):
                return True
        elif isinstance(node, ast.Attribute):
            if _unsafe_attribute(node.attr):
                return True
            formats = formats or node.attr == "format"
        elif isinstance(node, ast.Import):
            if any(alias.name.split(".")[0] not in SAFE_MODULES for alias in node.names):
                return True
        elif isinstance(node, ast.ImportFrom):
            if node.level or (node.module or "").split(".")[0] not in SAFE_MODULES or any(
                    alias.name in UNSAFE_NAMES or _unsafe_attribute(alias.name) for alias in node.names):
                return True
        elif isinstance(node, ast.MatchClass):
            if any(_unsafe_attribute(name) for name in node.kwd_attrs):
                return True
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if ("__" in node.value and node.value != "__main__") or node.value in UNSAFE_ATTRIBUTES:
                return True
            field_like = field_like or "." in node.value or "[" in node.value
    return formats and field_like


def strip_outer_fence(code: str) -> str:
    """```python ... ``` around the whole code -> the code."""
    lines = code.strip().splitlines()
    if len(lines) >= 2 and lines[0].lstrip().startswith("```"):
        lines = lines[1:]
        if lines and lines[-1].strip() == "```":
            lines = lines[:-1]
        return "\n".join(lines) + "\n"
    return code


def _docstring_nodes(tree: ast.AST) -> list[ast.Constant]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                found.append(body[0].value)
    return found


def _drop_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
