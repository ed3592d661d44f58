"""The engine's shape: no import circle among its modules, no provider SDK inside it."""

from __future__ import annotations

import ast
from pathlib import Path

import llm_erm.engine

ENGINE = Path(llm_erm.engine.__file__).parent
SDKS = ("openai", "anthropic", "google", "prefect")


def _module(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (functions included), except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", getattr(block.test, "attr", None)) == "TYPE_CHECKING"
                   for stmt in block.body for node in ast.walk(stmt)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from pkg import module` imports the module; `from pkg import name`, the package's __init__
            modules = {f"{node.module}.{a.name}" for a in node.names if _is_module(f"{node.module}.{a.name}")}
            out |= modules or {node.module}
    return out


def _is_module(name: str) -> bool:
    path = ENGINE.parent.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in ENGINE.glob("*.py")}
    return {name: {m for m in _imports(path) if m in files and m != name} for name, path in files.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], dict.fromkeys(edges, 0)  # 0 new, 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state[nxt] == 1:
                found.append([*stack[stack.index(nxt):], nxt])
            elif state[nxt] == 0:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(edges):
        if state[node] == 0:
            visit(node, [node])
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_engine_modules_import_each_other_without_a_circle():
    edges = graph()
    assert "llm_erm.engine.run" in edges and edges["llm_erm.engine.run"]  # the graph is really read
    assert cycles(edges) == []


def test_the_engine_imports_no_provider_sdk_and_no_prefect():
    for path in ENGINE.glob("*.py"):
        sdks = sorted(m for m in _imports(path) if m.split(".")[0] in SDKS)
        assert not sdks, f"{path.name} imports {sdks}"
