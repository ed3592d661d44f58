"""Clean a candidate program without changing what it does (on by default; recorded in every row).

An outer markdown fence, comments and docstrings go. The program is parsed, its docstrings removed from
the tree and the tree printed back (`ast.unparse`, which drops comments); the result is kept only when
it parses back to exactly that tree, so the code that runs is the same. Docstrings and line numbers are
still observable by a program that introspects itself (`__doc__`, `__code__`, frames, tracebacks,
`inspect`, `getattr` with a computed name, ...): when the program contains anything of that kind, it is
kept exactly as it is (minus the fence), in doubt. Code that does not parse keeps its text (minus the
fence): the sandbox then reports its syntax error. Programs over MAX_PARSE_CHARS are not rewritten, so
the cost per program is bounded.
"""

import ast

PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)
MAX_PARSE_CHARS = 200_000
# Names and attributes through which a program can see its own docstrings, code objects or line numbers.
INTROSPECTION_NAMES = frozenset({
    "globals", "locals", "vars", "getattr", "help", "eval", "exec", "compile", "__import__", "breakpoint",
    "__doc__", "__builtins__", "__loader__", "__spec__", "__file__", "__dict__",
})
INTROSPECTION_ATTRIBUTES = frozenset({
    "f_lineno", "f_code", "f_back", "f_locals", "f_globals", "tb_lineno", "tb_frame", "tb_next", "co_consts",
    "co_firstlineno", "co_lnotab", "co_lines", "co_positions", "co_linetable", "_getframe", "exc_info",
    "currentframe", "getdoc", "getsource", "getsourcelines", "getframeinfo", "extract_stack",
    "extract_tb", "format_exc", "format_exception", "print_exc", "settrace", "setprofile", "getcomments",
})
DUNDERS = ("__doc__", "__code__", "__dict__", "__globals__", "__builtins__", "__class__", "__func__", "__self__",
           "__module__", "__qualname__", "__annotations__", "__wrapped__", "__closure__", "__defaults__")
INTROSPECTION_MODULES = frozenset({"inspect", "traceback", "dis", "pydoc", "linecache", "gc", "ctypes", "warnings"})


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


def introspects(tree: ast.AST) -> bool:
    """Whether the program could see its own docstrings, code objects or line numbers."""
    docstrings = {id(node) for node in _docstring_nodes(tree)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in INTROSPECTION_NAMES:
            return True
        if isinstance(node, ast.Attribute) and (
                node.attr in INTROSPECTION_ATTRIBUTES or (node.attr.startswith("__") and node.attr.endswith("__"))):
            return True
        if isinstance(node, ast.alias) and node.name.split(".")[0] in INTROSPECTION_MODULES:
            return True
        if isinstance(node, ast.ImportFrom) and ((node.module or "").split(".")[0] in INTROSPECTION_MODULES or (
                node.module == "sys" and any(a.name in INTROSPECTION_ATTRIBUTES for a in node.names))):
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings \
                and (node.value in INTROSPECTION_ATTRIBUTES or any(name in node.value for name in DUNDERS)):
            return True
    return False


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
