"""Package layers that only point down, read off the source with ``ast``: every import counts
(module level, inside functions, under ``if TYPE_CHECKING:``).

- The top-level packages and modules of secateurs (api, cli, runs, pruning, latency, store,
  report, train, measurement, data, models, ...) import each other without a cycle.
- No training-time or one-shot method package imports another; they share
  :mod:`secateurs.pruning.compaction` and :mod:`secateurs.pruning.channel_scores` instead.
- Replay (:mod:`secateurs.pruning.history`) imports no method, only the compaction toolkit.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import secateurs

SOURCE = Path(secateurs.__file__).resolve().parent
# method packages of secateurs.pruning: the gradual Taylor method is two modules, one method
METHODS = {
    "spp": "spp",
    "sgcnn": "sgcnn",
    "campfire": "campfire",
    "methods": "methods",
    "taylor_gradual": "taylor_gradual",
    "taylor_gradual_method": "taylor_gradual",
    "taylor_gradual_latency": "taylor_gradual",
}


def module_name(path: Path) -> str:
    """``secateurs.a.b`` for ``<src>/secateurs/a/b.py`` (an ``__init__`` is its package)."""
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> Iterator[tuple[str, int]]:
    """(absolute module name, line) of every import in ``path``; ``from secateurs import x``
    yields ``secateurs.x``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module, node.lineno
            yield from ((f"{module}.{alias.name}", node.lineno) for alias in node.names)


def top_level(module: str) -> str | None:
    """The top-level package or module of secateurs ``module`` belongs to (None outside)."""
    parts = module.split(".")
    if parts[0] != "secateurs" or len(parts) < 2:
        return None
    return (
        parts[1] if (SOURCE / parts[1]).is_dir() or (SOURCE / f"{parts[1]}.py").exists() else None
    )


def package_graph() -> dict[str, dict[str, str]]:
    """{package: {imported package: "file:line" of one import}} for secateurs' top level."""
    graph: dict[str, dict[str, str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        source = top_level(module_name(path))
        if source is None:
            continue
        edges = graph.setdefault(source, {})
        for module, line in imported_modules(path):
            target = top_level(module)
            if target is not None and target != source:
                edges.setdefault(target, f"{path.relative_to(SOURCE.parent)}:{line}")
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str]:
    """One cycle of ``graph`` as [a, b, ..., a], or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node], path[len(path) :] = 1, [node]
        for child in sorted(graph.get(node, {})):
            if state.get(child) == 1:
                return [*path[path.index(child) :], child]
            if child not in state and (found := visit(child)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def method_of(module: str) -> str | None:
    """The method package a ``secateurs.pruning.*`` module belongs to, if any."""
    parts = module.split(".")
    if parts[:2] != ["secateurs", "pruning"] or len(parts) < 3:
        return None
    return METHODS.get(parts[2])


def test_the_package_graph_has_no_cycle() -> None:
    graph = package_graph()
    cycle = find_cycle(graph)
    edges = [f"{a} -> {b} ({graph[a][b]})" for a, b in itertools.pairwise(cycle)]
    assert not cycle, "package import cycle:\n  " + "\n  ".join(edges)


def test_no_method_package_imports_another() -> None:
    crossings: dict[str, str] = {}  # "file:line": the module it imports
    for path in sorted((SOURCE / "pruning").rglob("*.py")):
        own = method_of(module_name(path))
        if own is None:
            continue
        for module, line in imported_modules(path):
            other = method_of(module)
            if other is not None and other != own:
                crossings.setdefault(f"{path.relative_to(SOURCE.parent)}:{line}", module)
    assert not crossings, "\n".join(f"{at} imports {module}" for at, module in crossings.items())


def test_replay_imports_no_method() -> None:
    path = SOURCE / "pruning" / "history.py"
    methods = {line: m for m, line in reversed(list(imported_modules(path))) if method_of(m)}
    assert not methods, "\n".join(f"line {line}: {m}" for line, m in methods.items())


def test_the_checks_see_imports_inside_functions_and_type_checking() -> None:
    """The reader counts what a lazy or typing-only import would hide."""
    graph = {"a": {"b": "x"}, "b": {"c": "y"}, "c": {"a": "z"}, "d": {"a": "w"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": "x"}, "b": {}}) == []
    found = dict(imported_modules(SOURCE / "report" / "__init__.py"))
    assert "secateurs.report.plot.plot_report" in found  # imported inside write_report
