"""The package's import graph has no circles, and the test doubles stay out of the product.

The graph is read from the source with `ast`, not by importing: every `import` and `from ... import` in
every module of llm_erm counts, at module level or inside a function (a lazy import is still a
dependency: it runs on the first call and fails the same way), except under `if TYPE_CHECKING:` (it never
runs; the engine's own test, test_engine_imports.py, draws the same line).
Relative imports are resolved against the importing module's package; `from package import name` is an
edge to `package.name` when that is a module, else to the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "llm_erm"

# Circles that exist today in areas being reworked elsewhere. Each entry is a whole circle (a strongly
# connected set of modules); the test fails when a circle is not covered by an entry (a new one, or one
# that grew) and when an entry no longer matches (it shrank or went: shrink or delete the entry). Empty
# this list as the circles are broken; it should end empty.
ALLOWED_CIRCLES: list[frozenset[str]] = [
    # datasets: targets -> custom -> targets; store <-> generators/splits/tabular.generate (issue 22 item 4,
    # targets as families, will own what store and generators now dispatch on).
    frozenset({
        "llm_erm.datasets.custom", "llm_erm.datasets.generators", "llm_erm.datasets.splits",
        "llm_erm.datasets.store", "llm_erm.datasets.tabular.generate", "llm_erm.datasets.targets",
    }),
    # the method-kind registry: config validates a method id against engine.methods.KINDS (lazily), and the
    # registry's trial functions and the plan read the config (a names-only registry would break it).
    frozenset({"llm_erm.config", "llm_erm.engine.methods", "llm_erm.plan"}),
    # flows: the grid flow starts the analysis flow, which reuses the grid flow's helpers.
    frozenset({"llm_erm.flows.analysis", "llm_erm.flows.grid"}),
]

# Edges that are not dependencies. The root package's `__getattr__` is the lazy public facade
# (`from llm_erm import GridConfig, run_grid`): it imports config and the engine only when a caller asks
# for those names, and modules below read the root for `__version__` alone.
IGNORED_EDGES = {("llm_erm", "llm_erm.config"), ("llm_erm", "llm_erm.engine")}

TESTING = "llm_erm.testing"  # fakes of provider APIs for tests and benchmarks; never imported by the product


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module and package under `root` (a package directory)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The modules of `known` that module `name` (at `path`) imports, anywhere in its body."""
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def owner(dotted: str) -> str | None:  # the longest known module that `dotted` is or is inside
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                   for statement in block.body for node in ast.walk(statement)}
    targets: set[str | None] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets.update(owner(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x / from ..pkg import y
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in known else owner(source))
    return {t for t in targets if t is not None and t != name}


def _is_type_checking(test: ast.expr) -> bool:  # `if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def graph(root: Path) -> dict[str, set[str]]:
    found = modules(root)
    return {name: {t for t in imports(name, path, found) if (name, t) not in IGNORED_EDGES}
            for name, path in found.items()}


def circles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected sets of two or more modules (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.add(member)
                    if member == node:
                        break
                if len(members) > 1:
                    found.append(frozenset(members))
    return found


def describe(circle: frozenset[str], edges: dict[str, set[str]]) -> str:
    return "; ".join(f"{a} -> {b}" for a in sorted(circle) for b in sorted(edges[a] & circle))


def test_the_package_has_no_import_circles_beyond_the_allowed_ones():
    edges = graph(PACKAGE)
    found = circles(edges)
    new = [c for c in found if not any(c <= allowed for allowed in ALLOWED_CIRCLES)]
    assert not new, "import circles: " + " | ".join(describe(c, edges) for c in new) + \
        " -- break them (move the shared piece into a module both can import)"
    for allowed in ALLOWED_CIRCLES:
        inside = frozenset().union(*(c for c in found if c <= allowed))
        assert inside == allowed, (f"the allowed circle {sorted(allowed)} is now {sorted(inside) or 'gone'}: "
                                   "shrink or delete its entry in ALLOWED_CIRCLES")


def test_no_product_module_imports_the_test_doubles():
    edges = graph(PACKAGE)
    product = {name for name in edges if name != TESTING and not name.startswith(TESTING + ".")}
    offenders = sorted(f"{name} -> {target}" for name in product for target in edges[name]
                       if target == TESTING or target.startswith(TESTING + "."))
    assert not offenders, f"product modules import {TESTING}: {offenders}"
    assert any(name.startswith(TESTING + ".") for name in edges), "llm_erm.testing has no modules: is the path right?"


def test_the_graph_sees_lazy_type_only_and_relative_imports_and_finds_their_circle(tmp_path):
    """The reader itself, on a package made for it: a circle closed only by a function-level relative
    import, a `from package import module` edge, and a type-only import that is no edge."""
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("from pkg.sub import a\n")
    (root / "sub" / "a.py").write_text("from pkg import util\n\ndef later():\n    from . import b\n")
    (root / "sub" / "b.py").write_text("from .a import later\n")
    (root / "util.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.other import X\n")
    (root / "other.py").write_text("import pkg.util\n\ndef later():\n    from pkg import sub\n")
    edges = graph(root)
    assert edges["pkg.sub"] == {"pkg.sub.a"} and edges["pkg.sub.a"] == {"pkg.util", "pkg.sub.b"}
    assert edges["pkg.util"] == set() and edges["pkg.other"] == {"pkg.util", "pkg.sub"}
    assert sorted(map(sorted, circles(edges))) == [["pkg.sub.a", "pkg.sub.b"]]


# Written in parts so that the coordinator's rename script (s/old.path/new.path/) does not rewrite them.
@pytest.mark.parametrize("old", [("proposers", "wire_server"), ("proposers", "wire_batches"),
                                 ("proposers", "anthropic_wire"), ("proposers", "gemini_wire"), ("budget",),
                                 ("selection",)], ids=".".join)
def test_moved_modules_left_no_shim_behind(old):
    """One name, one place: no module or package remains at the old path of a moved module (the source tree
    is looked at, not sys.path: an editable install elsewhere may still have the old file)."""
    assert ".".join(("llm_erm", *old)) not in modules(PACKAGE)
