"""Clean a candidate program without changing what it does (SPEC section 7).

An outer markdown fence, comments and docstrings go. The program is parsed, its docstrings removed from
the tree and the tree printed back (`ast.unparse`, which drops comments); the result is kept only when
it parses back to exactly that tree, so behaviour is unchanged by construction. Code that does not parse
keeps its text (minus the fence): the sandbox then reports its syntax error.
"""

import ast

PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError)


def sanitize_code(code: str) -> str:
    """`code` without an outer fence, comments and docstrings."""
    clean = try_sanitize(code)
    return clean if clean is not None else strip_outer_fence(code)


def try_sanitize(code: str) -> str | None:
    """The sanitised code, or None when it cannot be sanitised (it does not parse)."""
    code = strip_outer_fence(code)
    try:
        tree = ast.parse(code)
        _drop_docstrings(tree)
        clean = ast.unparse(tree) + "\n"
        if ast.dump(ast.parse(clean)) != ast.dump(tree):
            return None
    except PARSE_ERRORS:
        return None
    return clean


def strip_outer_fence(code: str) -> str:
    """```python ... ``` around the whole code -> the code."""
    lines = code.strip().splitlines()
    if len(lines) >= 2 and lines[0].lstrip().startswith("```"):
        lines = lines[1:]
        if lines and lines[-1].strip() == "```":
            lines = lines[:-1]
        return "\n".join(lines) + "\n"
    return code


def _drop_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
