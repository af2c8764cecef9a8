"""Imports only go down the layers of docs/architecture.md, and no modules import each other
in a circle.

The import graph of `chatr/` is read with `ast` (nothing is imported or run). Every import
counts for the direction: at module level, inside a function, or under `if TYPE_CHECKING:`.
For cycles only the imports that run count: a type-only import (under `TYPE_CHECKING`) is how
two strawberry types of one layer name each other lazily (`strawberry.lazy`), and it may point
sideways within its layer, never up.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "chatr"

#: Lowest first. A module may import from its own layer and the layers before it. A module
#: or package missing here fails the test: a new one needs a place in the map.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation",
        (
            "chatr.settings",
            "chatr.errors",
            "chatr.global_ids",
            "chatr.aio",
            "chatr.frames",
            "chatr.security",
            "chatr.supervision",
            "chatr.migrations",
        ),
    ),
    (
        "data and transport",
        ("chatr.models", "chatr.db", "chatr.fair_pool", "chatr.redis_lane", "chatr.pubsub"),
    ),
    ("infrastructure", ("chatr.infra",)),
    ("runtime", ("chatr.runtime",)),
    ("services", ("chatr.services",)),
    ("context", ("chatr.context", "chatr.loaders", "chatr.client_address")),
    ("resolvers", ("chatr.resolvers",)),
    ("schema", ("chatr.schema",)),
    (
        "application",
        (
            "chatr.app",
            "chatr.asgi",
            "chatr.cli",
            "chatr.demo",
            "chatr.http",
            "chatr.websocket",
            "chatr.socket_registry",
        ),
    ),
)


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    #: False for an import under `if TYPE_CHECKING:` (never executed).
    runs: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.AST, runs: bool = True) -> Iterator[tuple[ast.stmt, bool]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield child, False
                yield from _statements(child, False)
            for child in node.orelse:
                yield child, runs
                yield from _statements(child, runs)
        elif isinstance(node, ast.stmt):
            yield node, runs
            yield from _statements(node, runs)
        else:
            yield from _statements(node, runs)


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[Import]:
    """The chatr modules `name` imports, each resolved to the module it names (`from
    chatr.services import auth` is chatr.services.auth; `from chatr.models import User` is
    chatr.models)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def add(target: str, node: ast.stmt, runs: bool) -> None:
        while target not in known and "." in target:
            target = target.rpartition(".")[0]
        if target in known and target != name:
            found.append(Import(name, target, node.lineno, runs))

    for node, runs in _statements(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "chatr":
                    add(alias.name, node, runs)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source.split(".")[0] != "chatr":
                continue
            for alias in node.names:
                child = f"{source}.{alias.name}"
                add(child if child in known else source, node, runs)
    return found


def import_graph() -> list[Import]:
    known = modules()
    return [found for name, path in known.items() for found in imports_of(name, path, known)]


def layer_of(module: str) -> int | None:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return index
    return None


def cycles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = [name for name in modules() if name != "chatr" and layer_of(name) is None]
    assert not unplaced, f"place these modules in LAYERS (and docs/architecture.md): {unplaced}"


def test_no_module_imports_from_a_layer_above_it() -> None:
    upward = [
        f"{edge.importer}:{edge.line} imports {edge.imported} "
        f"({LAYERS[low][0]} -> {LAYERS[high][0]})"
        for edge in import_graph()
        if (low := layer_of(edge.importer)) is not None
        and (high := layer_of(edge.imported)) is not None
        and high > low
    ]
    assert not upward, "imports from a layer above:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    found = cycles([edge for edge in import_graph() if edge.runs])
    assert not found, "modules importing each other in a circle:\n" + "\n".join(
        " <-> ".join(component) for component in found
    )


def test_the_checks_see_an_upward_import_and_a_cycle() -> None:
    """The reader is not blind: the graph has the imports everyone knows are there, and the
    checks flag a made-up upward edge and a made-up cycle."""
    edges = import_graph()
    assert Import("chatr.schema", "chatr.settings", 0, True) in [
        Import(edge.importer, edge.imported, 0, edge.runs) for edge in edges
    ]
    services, schema = layer_of("chatr.services.messages"), layer_of("chatr.schema.messages")
    assert services is not None and schema is not None and schema > services
    made_up = [
        Import("chatr.services.a", "chatr.services.b", 1, True),
        Import("chatr.services.b", "chatr.services.a", 1, True),
    ]
    assert cycles(made_up) == [["chatr.services.a", "chatr.services.b"]]
    assert cycles(made_up[:1]) == []
