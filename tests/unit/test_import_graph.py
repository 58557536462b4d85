"""No import cycle among caracal_forensics modules, imports inside functions included.

Every module is parsed with ``ast`` (nothing is imported): every ``import`` and ``from ...
import`` statement anywhere in it counts, relative imports resolved, ``from pkg import
name`` counted as an import of ``pkg.name`` when that is a module. Imports under ``if
TYPE_CHECKING:`` are left out: they never run, they only name types for the checker.
Only import statements make edges: that importing ``a.b`` also runs ``a/__init__.py``
is not counted (a package importing its own submodules would otherwise be a cycle).
C extensions (``*.so``) are modules that import nothing of ours.
"""

from __future__ import annotations

import ast
from pathlib import Path

from support import paths

PACKAGE = "caracal_forensics"
ROOT = paths.ROOT / PACKAGE

#: Cycles allowed for a while (a branch that removes one takes it out): this set only
#: shrinks (``test_known_cycles_still_exist``). Issue 16 emptied it; keep it empty.
KNOWN_CYCLES: set[frozenset[str]] = set()


def _modules() -> dict[str, Path]:
    modules = {}
    for path in [*ROOT.rglob("*.py"), *ROOT.rglob("*.so")]:  # C extensions import nothing
        parts = list(path.relative_to(ROOT.parent).parts)
        parts[-1] = parts[-1].split(".")[0]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Import statements anywhere in ``tree``, not under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from (i for child in node.orelse for i in _imports_of(child))
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _imports(node)


def graph() -> dict[str, set[str]]:
    """module -> the caracal_forensics modules it imports."""
    modules = _modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        if path.suffix != ".py":
            continue
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules
                           else base for alias in node.names]
            for target in targets:
                while target and target not in modules:  # a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def _path(edges: dict[str, set[str]], component: list[str]) -> str:
    """One cycle through the component's first module, as a -> b -> a."""
    members = set(component)
    start = component[0]
    trail = [start]
    seen = {start}
    node = start
    while True:
        nexts = sorted(edges[node] & members)
        if start in nexts and len(trail) > 1:
            return " -> ".join([*trail, start])
        fresh = [n for n in nexts if n not in seen]
        if not fresh:
            return " -> ".join([*trail, nexts[0]])
        node = fresh[0]
        trail.append(node)
        seen.add(node)


def test_no_import_cycle() -> None:
    edges = graph()
    new = [c for c in cycles(edges) if frozenset(c) not in KNOWN_CYCLES]
    assert not new, "import cycles:\n" + "\n".join(_path(edges, c) for c in new)


def test_the_check_sees_a_cycle_through_an_import_inside_a_function() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert _path(edges, ["a", "b", "c"]) == "a -> b -> c -> a"
    tree = ast.parse("def f():\n    from . import x\nif TYPE_CHECKING:\n    import y\n")
    assert [type(n).__name__ for n in _imports(tree)] == ["ImportFrom"]


def test_known_cycles_still_exist() -> None:
    """An allowed cycle that is gone leaves the list (it only shrinks)."""
    found = {frozenset(c) for c in cycles(graph())}
    assert not KNOWN_CYCLES - found, sorted(map(sorted, KNOWN_CYCLES - found))
