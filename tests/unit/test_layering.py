"""The import graph of evalbench: no cycles, no import running back up from a lower layer.

Read from the source with `ast` (nothing is imported), counting imports inside functions too: a
lazy import that climbs a layer is still a cycle in the design, it only fails later.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import evalbench

PACKAGE_DIR = Path(evalbench.__file__).parent
# The facade `evalbench/__init__.py` re-exports the public API lazily (PEP 562): its lazy edges point
# down by design, and lower modules may import `__version__` from it.
FACADE = "evalbench"

# Private names used across modules, to be made public or moved (each entry is a debt; none left).
KNOWN_PRIVATE_USES: set[str] = set()

# What the bottom layers may import from evalbench (besides the package's `__version__`).
ALLOWED_BELOW: dict[str, set[str]] = {
    "evalbench.errors": set(),
    "evalbench.paths": {"evalbench.errors"},
    "evalbench.io": {"evalbench.errors"},
    "evalbench.store": {"evalbench.errors", "evalbench.io", "evalbench.paths", "evalbench.provenance"},
    "evalbench.provenance": {"evalbench.errors", "evalbench.io", "evalbench.paths"},
}


def module_files() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def is_cli_module(name: str) -> bool:
    """Command modules: argv in, printed output and exit codes out; all of them live in evalbench.cli."""
    last = name.rsplit(".", 1)[-1]
    return (name == "evalbench.cli" or name.startswith("evalbench.cli.") or last in ("cli", "__main__")
            or last.endswith("_cli") or last.startswith("cli_"))


# Layers, lowest first (module-name prefixes; the longest matching prefix decides). A module may
# import its own layer and those below; CLI modules sit above all of them. Modules not listed are
# not checked (list new ones here).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("evalbench.errors", "evalbench.paths", "evalbench.io", "evalbench.registry", "evalbench.progress",
              "evalbench.resources", "evalbench.units")),
    ("records", ("evalbench.config", "evalbench.types", "evalbench.data", "evalbench.provenance", "evalbench.cache",
                 "evalbench.store", "evalbench.sampling", "evalbench.failures", "evalbench.executors")),
    ("engines", ("evalbench.generate", "evalbench.serve", "evalbench.judge", "evalbench.score", "evalbench.models",
                 "evalbench.backends")),
    ("stages", ("evalbench.suites", "evalbench.train", "evalbench.runspec")),
    ("driver", ("evalbench.api", "evalbench.preflight", "evalbench.aggregate", "evalbench.report",
                "evalbench.analysis", "evalbench.demo", "evalbench.executors.local", "evalbench.executors.ray")),
)


def layer_of(name: str) -> int | None:
    if is_cli_module(name):
        return len(LAYERS)
    matches = [(len(prefix), level) for level, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
               if name == prefix or name.startswith(prefix + ".")]
    return max(matches)[1] if matches else None


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> Iterator[tuple[str, bool]]:
    """(dotted name, at module level?) for every import, `if TYPE_CHECKING:` blocks excluded."""

    def walk(node: ast.AST, top: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner_top = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, top
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    yield f"{base}.{alias.name}", top
            yield from walk(child, inner_top)

    yield from walk(tree, True)


def import_graph() -> dict[str, dict[str, bool]]:
    """module -> {imported evalbench module: imported at module level?}."""
    mods = module_files()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, bool]] = {}
    for name, path in mods.items():
        edges: dict[str, bool] = {}
        for imported, top in _imported_names(ast.parse(path.read_text()), name, path.name == "__init__.py"):
            target = owner(imported)
            if target and target != name:
                edges[target] = edges.get(target, False) or top
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, bool]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root, root_edges in graph.items():
        if root in index:
            continue
        work = [(root, iter(root_edges))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, {}))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def _without_facade(graph: dict[str, dict[str, bool]]) -> dict[str, dict[str, bool]]:
    return {m: ({} if m == FACADE else {t: top for t, top in edges.items() if t != FACADE})
            for m, edges in graph.items()}


def test_cycle_finder_finds_a_lazy_cycle():
    graph = {"a": {"b": True}, "b": {"c": False}, "c": {"a": True}, "d": {"a": True}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(_without_facade(import_graph())) == []


def test_bottom_layers_import_nothing_above_them():
    graph = import_graph()
    climbing = {m: sorted(set(graph.get(m, {})) - allowed - {FACADE}) for m, allowed in ALLOWED_BELOW.items()}
    assert {m: up for m, up in climbing.items() if up} == {}


def test_library_modules_never_import_cli_modules():
    graph = import_graph()
    offenders = sorted(f"{m} -> {t}" for m, edges in graph.items() if not is_cli_module(m) and m != FACADE
                       for t in edges if is_cli_module(t))
    assert offenders == []


def test_no_import_climbs_a_layer():
    graph = import_graph()
    climbing = []
    for module, edges in graph.items():
        own = layer_of(module)
        for target in edges:
            other = layer_of(target)
            if own is not None and other is not None and other > own:
                climbing.append(f"{module} ({LAYERS[own][0]}) -> {target} "
                                f"({LAYERS[other][0] if other < len(LAYERS) else 'cli'})")
    assert sorted(climbing) == []


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses() -> set[str]:
    """`module -> other.module._name` for every private name of another evalbench module used."""
    mods = module_files()
    found: set[str] = set()
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        module_aliases: dict[str, str] = {}  # local name -> evalbench module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("evalbench"):
                for alias in node.names:
                    if _is_private(alias.name):
                        found.add(f"{name} -> {node.module}.{alias.name}")
                    if f"{node.module}.{alias.name}" in mods:
                        module_aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("evalbench") and alias.asname:
                        module_aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in module_aliases and _is_private(node.attr)
                    and module_aliases[node.value.id] != name):
                found.add(f"{name} -> {module_aliases[node.value.id]}.{node.attr}")
    return found


def test_no_private_name_crosses_a_module_boundary():
    assert sorted(private_uses() - KNOWN_PRIVATE_USES) == []


def test_every_command_module_is_in_the_cli_package():
    strays = sorted(m for m in import_graph() if is_cli_module(m)
                    and not (m == "evalbench.cli" or m.startswith("evalbench.cli.") or m == "evalbench.__main__"))
    assert strays == []


def test_only_the_cli_package_parses_arguments():
    """argparse belongs to the command layer; a library module that builds parsers is a command in hiding."""
    users = sorted(m for m, path in module_files().items()
                   if not m.startswith("evalbench.cli") and "argparse" in import_names(path))
    assert users == []


def import_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_every_module_has_a_layer():
    """A new module must say where it sits (add it to LAYERS), or the climbing check cannot see it."""
    unlayered = sorted(m for m in import_graph() if layer_of(m) is None and m != FACADE
                       and not m.startswith("evalbench.assets."))
    assert unlayered == []
