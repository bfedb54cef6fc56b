"""The import contract of the package: the layers of docs/architecture.rst, one direction of imports.

Every import counts, wherever it is written: at the top of a module, inside a function, or under
`if TYPE_CHECKING:` (a function-level import that only hides a cycle is still a cycle). Imports of
other distributions (pandas, numpy, matplotlib, ...) are not checked: they may be made lazily for speed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import influxhtm

PACKAGE_DIR = Path(influxhtm.__file__).resolve().parent

#: The layers, lowest first, and the modules (or packages) each holds. Imports go one way: a module may
#: import its own layer and the layers before it in this list.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("influxhtm.core", "influxhtm._version")),
    ("model", ("influxhtm.model", "influxhtm._speedups")),
    ("query", ("influxhtm.influxql",)),
    ("io", ("influxhtm.io",)),
    ("orm", ("influxhtm.orm",)),
    ("htm domain", ("influxhtm.htm",)),
    ("running", ("influxhtm.running",)),
    ("tools", ("influxhtm.tools", "influxhtm.cli", "influxhtm.pytest_plugin")),
    ("package", ("influxhtm", "influxhtm.legacy")),  # the public surface: nothing inside imports it
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def layer_of(module: str) -> int:
    """Index in LAYERS of the layer holding `module` (the longest matching prefix decides)."""
    best, best_length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS (and to docs/architecture.rst)"
    return best


def is_package(module: str) -> bool:
    return MODULES.get(module, Path()).name == "__init__.py"


def resolve(importer: str, level: int, target: str | None) -> str:
    package = importer if is_package(importer) else importer.rpartition(".")[0]
    base = package.split(".")
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports(module: str) -> Iterator[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import of an influxhtm module."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "influxhtm":
                    yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            source = resolve(module, node.level, node.module) if node.level else node.module or ""
            if source.split(".")[0] != "influxhtm":
                continue
            names = []
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in MODULES or submodule == "influxhtm._speedups":
                    yield submodule, [], node.lineno
                else:
                    names.append(alias.name)
            if names:
                yield source, names, node.lineno


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for target, _, _ in imports(module):
            if target in MODULES and target != module:
                graph[module].add(target)
    return graph


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_imports_go_down_the_layers() -> None:
    wrong = []
    for module in MODULES:
        for target, _, line in imports(module):
            if layer_of(target) > layer_of(module):
                wrong.append(
                    f"{module}:{line} imports {target} "
                    f"({LAYERS[layer_of(module)][0]} -> {LAYERS[layer_of(target)][0]})"
                )
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module are the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
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

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_between_modules() -> None:
    cycles = strongly_connected(edges())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def private_definitions() -> dict[str, set[int]]:
    """Each private name defined in the package (functions, classes, module or class attributes) ->
    the layers defining it."""
    defined: dict[str, set[int]] = {}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        names.append(target.id)
                    elif isinstance(target, ast.Attribute):
                        names.append(target.attr)
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    defined.setdefault(name, set()).add(layer_of(module))
    return defined


def test_no_module_reaches_another_layers_private_names() -> None:
    defined = private_definitions()
    wrong = []
    for module, path in MODULES.items():
        own = layer_of(module)
        for target, names, line in imports(module):
            if layer_of(target) != own:
                if target.rpartition(".")[2].startswith("_") and target != "influxhtm._version":
                    wrong.append(f"{module}:{line} imports the private module {target}")
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                wrong.extend(f"{module}:{line} imports {target}.{n}" for n in private)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Attribute):
                continue
            name = node.attr
            if not name.startswith("_") or name.startswith("__") or name not in defined:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if own not in defined[name]:
                wrong.append(f"{module}:{node.lineno} reaches .{name}, private to another layer")
    assert not wrong, "private names reached across layers:\n" + "\n".join(wrong)
