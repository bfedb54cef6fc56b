#!/usr/bin/env python3
"""Move influxhtm's modules into the layer sub-packages and rewrite every import of them.

Usage (from the repository root, with the project's virtualenv):

    python scripts/relayout.py            # move and rewrite
    python scripts/relayout.py --check    # list what would change, change nothing (exit 1 if anything would)

What it does, in this order:

1. In every ``.py`` file under ``influxhtm/``, relative imports become absolute (``from .errors import X``
   -> ``from influxhtm.errors import X``). A relative import is resolved against the file's place; in a
   file already moved it is resolved against its old place when that is the only reading that names a
   module (code merged from a branch written against the old layout).
2. In every ``.py .rst .md .toml .ini .cfg .txt`` file of the repository (package, tests, benchmarks, docs,
   setup.py, README), module names of ``MOVES`` are rewritten: dotted names (``influxhtm.errors`` ->
   ``influxhtm.core.errors``), paths (``influxhtm/errors.py``) and, in Python, ``from influxhtm import
   errors`` (split into one statement per new package; a renamed module keeps its local name with ``as``).
3. ``git mv`` of every file still at an old path (a whole sub-package for a package entry); a file at an
   old path whose new path also exists is reported, not overwritten.
4. ``ruff check --select I --fix`` on the rewritten Python files, so import blocks stay sorted.

It is idempotent: a second run changes nothing. Rerun it after merging branches written against the old
layout; it prints the modules under ``influxhtm/`` that no layer holds yet (add them to ``MOVES``).
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "influxhtm"

#: old module -> new module, inside the package (this file must not name them in full: rewriting the
#: repository would rewrite this table; the script skips itself too). A package entry (engines) moves the
#: package with all its modules.
_SHORT_MOVES: dict[str, str] = {
    # core: errors, the one time rule, process helpers
    "errors": "core.errors",
    "times": "core.times",
    "_process": "core.processes",
    # model: declarations and what is generated from them
    "declarations": "model.declarations",
    "schema": "model.schema",
    "line_protocol": "model.line_protocol",
    "codegen": "model.codegen",
    "rows": "model.row_mappers",
    "records": "model.data_layout",
    # query: influxql stays where it is
    # io: settings, HTTP, the write pipeline
    "settings": "io.settings",
    "connection": "io.connection",
    "writing": "io.writing",
    # orm
    "client": "orm.client",
    "repository": "orm.repository",
    # htm domain
    "sensor": "htm.sensor",
    "model_store": "htm.model_store",
    "combined": "htm.combined",
    "result_forms": "htm.result_conversion",
    "plotting": "htm.plotting",
    # running: running stays; the engines join it
    "engines": "running.engines",
    # tools
    "nab": "tools.nab",
    "scoring": "tools.scoring",
    "csv_import": "orm.csv_import",
    "demo": "tools.demo",
    "server": "tools.server",
    "text_table": "tools.text_table",
    # merged after the move was first made (async client, pandas input, typing, fleet)
    "protocol": "io.http_api",
    "async_http": "io.async_http",
    "async_connection": "io.async_connection",
    "async_writing": "io.async_writing",
    "async_client": "orm.async_client",
    "async_repository": "orm.async_repository",
    "batching": "orm.batching",
    "async_sensor": "htm.async_sensor",
    "progress": "core.progress",
    "frames": "model.frames",
    "declared_base": "model.declared_base",
}
MOVES: dict[str, str] = {f"{PACKAGE}.{old}": f"{PACKAGE}.{new}" for old, new in _SHORT_MOVES.items()}

#: Names that left their module after the move (new module.name -> its new place), applied after MOVES.
_SHORT_NAME_MOVES: dict[str, str] = {
    # the sensors joined the client in the htm domain; the orm keeps DatabaseClient
    "orm.client.InfluxHtmClient": "htm.client.InfluxHtmClient",
    # argument checks went to the core
    "htm.sensor.check_name": "core.errors.check_name",
}
#: Flat names the package no longer exports (issue 13, point 6): errors live in `ih.errors`, InfluxQL
#: functions in `ih.fn`. `from influxhtm import QueryError` and `ih.QueryError` are rewritten.
DROPPED_ERRORS = (
    "AlreadyExists AuthenticationError ConfigurationError DatabaseNotFound InfluxConnectionError "
    "InfluxdNotFound InfluxTimeoutError ModelExists ModelNotFound NotFound PartialWriteError QueryError "
    "SensorNotFound ServerError ServerStartError TLSError"
).split()
DROPPED_FUNCTIONS = (
    "bottom call count cumulative_sum difference distinct first integral last max_ median min_ mode "
    "moving_average non_negative_derivative percentile sample spread stddev sum_ top"
).split()
_SHORT_NAME_MOVES.update({name: f"core.errors.{name}" for name in DROPPED_ERRORS})
_SHORT_NAME_MOVES.update({name: f"influxql.functions.{name}" for name in DROPPED_FUNCTIONS})
_SHORT_NAME_MOVES["ModelRecord"] = "model.data_layout.ModelRecord"
NAME_MOVES: dict[str, str] = {
    f"{PACKAGE}.{old}": f"{PACKAGE}.{new}" for old, new in _SHORT_NAME_MOVES.items()
}
#: `ih.<name>` -> `ih.<namespace>.<name>` where `ih` is `import influxhtm as ih` (any alias).
NAMESPACED = {**{name: "errors" for name in DROPPED_ERRORS}, **{name: "fn" for name in DROPPED_FUNCTIONS}}
PACKAGE_ALIAS = re.compile(r"^\s*import influxhtm as (\w+)\s*$", re.M)


def rewrite_namespaced(text: str) -> str:
    """`ih.QueryError` -> `ih.errors.QueryError`, `ih.count` -> `ih.fn.count` (names dropped from the
    top level), for each alias the file gives the package."""
    for alias in set(PACKAGE_ALIAS.findall(text)):
        names = "|".join(sorted(NAMESPACED, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w.]){re.escape(alias)}\.({names})\b")
        text = pattern.sub(lambda m, a=alias: f"{a}.{NAMESPACED[m.group(1)]}.{m.group(1)}", text)
    return text

#: Modules that stay at the top of the package (entry points named in installed metadata, the version).
STAY = {
    "influxhtm",
    "influxhtm.cli",
    "influxhtm.pytest_plugin",
    "influxhtm.legacy",
    "influxhtm._version",
    "influxhtm._speedups",
    "influxhtm._decode",
}
#: Packages that are layers (or stay as one): modules inside them are placed.
LAYER_PACKAGES = ("core", "model", "influxql", "io", "orm", "htm", "running", "tools")

TEXT_SUFFIXES = {".py", ".rst", ".md", ".toml", ".ini", ".cfg", ".txt"}
SKIP_DIRS = {".git", ".venv", "build", "_build", "dist", "__pycache__", ".mypy_cache", ".ruff_cache", "data"}


def _moved(name: str, table: dict[str, str]) -> str:
    """`name` with its longest prefix found in `table` replaced."""
    for old in sorted(table, key=len, reverse=True):
        if name == old or name.startswith(old + "."):
            return table[old] + name[len(old):]
    return name


def new_name(name: str) -> str:
    """`name` in the new layout (unchanged if no entry of MOVES is it or a package holding it)."""
    return _moved(_moved(name, MOVES), NAME_MOVES)


def old_name(name: str) -> str | None:
    """The old name of a module now at `name`, if it was moved."""
    for old, new in MOVES.items():
        if name == new or name.startswith(new + "."):
            return old + name[len(new):]
    return None


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def path_of(module: str, package: bool) -> Path:
    base = ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if package else base.with_suffix(".py")


def is_module(name: str) -> bool:
    """`name` names a module or package, in the old layout or the new one (moves may be pending)."""
    for candidate in {name, new_name(name), old_name(name) or name}:
        if path_of(candidate, False).exists() or path_of(candidate, True).exists():
            return True
        if path_of(candidate, False).with_suffix(".c").exists():  # the C extension's source
            return True
    return False


def repo_files() -> list[Path]:
    files = []
    for path in sorted(ROOT.rglob("*")):
        if path == Path(__file__).resolve():  # its table names the old modules
            continue
        parts = path.relative_to(ROOT).parts
        if path.is_file() and path.suffix in TEXT_SUFFIXES and not SKIP_DIRS.intersection(parts):
            files.append(path)
    return files


# ---- step 1: relative imports -> absolute ----------------------------------------------------------


def resolve(package: str, level: int, module: str | None) -> str:
    parts = package.split(".")
    base = parts[: len(parts) - (level - 1)] if level > 1 else parts
    return ".".join(base + ([module] if module else []))


def absolute_target(path: Path, node: ast.ImportFrom) -> str:
    here = module_of(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    readings = [resolve(package, node.level, node.module)]
    was = old_name(here)
    if was is not None:
        old_package = was if path.name == "__init__.py" else was.rpartition(".")[0]
        readings.append(resolve(old_package, node.level, node.module))

    def names_modules(target: str) -> bool:
        if node.module is not None:
            return is_module(target)
        return is_module(target) and all(is_module(f"{target}.{a.name}") for a in node.names) or False

    for target in readings:
        if names_modules(target):
            return target
    return readings[0]


def absolute_imports(path: Path, text: str) -> str:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    lines = text.splitlines(keepends=True)
    for node in sorted(
        (n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level), key=lambda n: -n.lineno
    ):
        line = lines[node.lineno - 1]
        dotted = r"\." * node.level + (re.escape(node.module) if node.module else "")
        pattern = re.compile(r"from\s+" + dotted + r"(?=\s)")
        match = pattern.search(line, node.col_offset)
        if match is None:
            raise SystemExit(f"{path}:{node.lineno}: cannot rewrite {line.strip()!r}")
        target = absolute_target(path, node)
        lines[node.lineno - 1] = line[: match.start()] + f"from {target}" + line[match.end():]
    return "".join(lines)


# ---- step 2: names of moved modules ---------------------------------------------------------------

DOTTED = re.compile(r"(?<![\w.])influxhtm(?:\.\w+)+")
SLASHED = re.compile(r"(?<![\w/.])influxhtm(?:/\w+)+(?:\.py|/)?")


def rewrite_dotted(text: str) -> str:
    def dotted(match: re.Match[str]) -> str:
        name = match.group(0)
        parts = name.split(".")
        # the longest prefix that is a moved module; the rest are attributes
        for end in range(len(parts), 1, -1):
            prefix = ".".join(parts[:end])
            if new_name(prefix) != prefix:
                return new_name(prefix) + name[len(prefix):]
        return name

    def slashed(match: re.Match[str]) -> str:
        path = match.group(0)
        suffix = ".py" if path.endswith(".py") else "/" if path.endswith("/") else ""
        module = path[: len(path) - len(suffix)].replace("/", ".")
        moved = new_name(module)
        if moved == module:
            return path
        return moved.replace(".", "/") + suffix

    return SLASHED.sub(slashed, DOTTED.sub(dotted, text))


def rewrite_from_package(text: str) -> str:
    """`from influxhtm import errors, Sensor` -> one statement per package a name now lives in."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    lines = text.splitlines(keepends=True)
    nodes = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and not n.level and n.module is not None
        and any(new_name(f"{n.module}.{a.name}") != f"{n.module}.{a.name}" for a in n.names)
    ]
    for node in sorted(nodes, key=lambda n: -n.lineno):
        assert node.module is not None and node.end_lineno is not None
        indent = lines[node.lineno - 1][: node.col_offset]
        groups: dict[str, list[str]] = {}
        for alias in node.names:
            full = f"{node.module}.{alias.name}"
            moved = new_name(full)
            package, _, name = moved.rpartition(".")
            local = alias.asname or alias.name
            groups.setdefault(package, []).append(name if local == name else f"{name} as {local}")
        statements = [f"{indent if i else ''}from {package} import {', '.join(names)}\n"
                      for i, (package, names) in enumerate(groups.items())]
        first = lines[node.lineno - 1]
        last = lines[node.end_lineno - 1]
        tail = last[node.end_col_offset:]
        replacement = first[: node.col_offset] + "".join(statements).rstrip("\n") + tail
        lines[node.lineno - 1 : node.end_lineno] = [replacement]
    return "".join(lines)


ALIAS = r"\w+(?: as \w+)?"
FROM_LINE = re.compile(rf"^([ \t>]*)from (influxhtm(?:\.\w+)*) import ({ALIAS}(?:, {ALIAS})*)[ \t]*$", re.M)


def rewrite_from_lines(text: str) -> str:
    """The same for one-line `from influxhtm... import a, b` in any text: strings of a .py file,
    code examples in .rst and .md files."""

    def one(match: re.Match[str]) -> str:
        indent, module, names = match.groups()
        groups: dict[str, list[str]] = {}
        for item in names.split(", "):
            name, _, local = item.partition(" as ")
            package, _, moved = new_name(f"{module}.{name}").rpartition(".")
            local = local or name
            groups.setdefault(package, []).append(moved if local == moved else f"{moved} as {local}")
        if list(groups) == [module]:
            return match.group(0)
        lines = [f"{indent}from {package} import {', '.join(items)}" for package, items in groups.items()]
        return "\n".join(lines)

    return FROM_LINE.sub(one, text)


# ---- step 3: moves --------------------------------------------------------------------------------


def planned_moves() -> list[tuple[Path, Path]]:
    moves = []
    for old, new in MOVES.items():
        old_dir, new_dir = path_of(old, True).parent, path_of(new, True).parent
        if old_dir.is_dir():  # a package (or what a merge left of it): every file in it
            for path in sorted(old_dir.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    moves.append((path, new_dir / path.relative_to(old_dir)))
        elif path_of(old, False).exists():
            moves.append((path_of(old, False), path_of(new, False)))
    return moves


def deeper_paths(old: Path, new: Path) -> None:
    """A module moved k folders deeper finds its package's files k folders further up
    (`Path(__file__).resolve().parent` -> `.parents[k]`)."""
    depth = len(new.relative_to(ROOT).parts) - len(old.relative_to(ROOT).parts)
    if depth <= 0 or new.suffix != ".py":
        return
    text = new.read_text(encoding="utf-8")
    here = r"Path\(__file__\)\.resolve\(\)\.parent\b(?!s)"
    moved = re.sub(here, f"Path(__file__).resolve().parents[{depth}]", text)
    if moved != text:
        new.write_text(moved, encoding="utf-8")


def new_packages() -> set[Path]:
    """__init__.py files the new layout needs (layer packages without one yet)."""
    needed = set()
    for new in MOVES.values():
        parts = new.split(".")[:-1]
        for end in range(2, len(parts) + 1):
            init = path_of(".".join(parts[:end]), True)
            if not init.exists():
                needed.add(init)
    return needed


LAYER_DOCSTRINGS = {
    "core": "The core layer: errors, the one time rule, process helpers. Imports only the standard library.",
    "model": "The model layer: declared measurements; their schema, encoders and row mappers.",
    "io": "The io layer: settings, the HTTP connection and the one write pipeline.",
    "orm": "The orm layer: the client and repositories of declared classes.",
    "htm": "The htm domain layer: sensors, model stores, the model registry, combined data and its plots.",
    "tools": "The tools layer: NAB data and scoring, CSV import, the demo, the managed local server.",
}


def unplaced_modules() -> list[str]:
    """Modules at the top of the package that no layer holds (add them to MOVES)."""
    found = []
    for path in sorted((ROOT / PACKAGE).iterdir()):
        if path.suffix == ".py":
            name = module_of(path)
        elif path.is_dir() and (path / "__init__.py").exists():
            name = module_of(path / "__init__.py")
        else:
            continue
        if name in STAY or name.split(".")[1] in LAYER_PACKAGES or new_name(name) != name:
            continue
        found.append(name)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report what would change, change nothing")
    args = parser.parse_args()

    changed: list[Path] = []
    for path in repo_files():
        text = path.read_text(encoding="utf-8")
        new = text
        if path.suffix == ".py" and path.relative_to(ROOT).parts[0] == PACKAGE:
            new = absolute_imports(path, new)
        if path.suffix == ".py":
            new = rewrite_from_package(new)
        new = rewrite_from_lines(new)
        new = rewrite_dotted(new)
        if path.suffix == ".py":
            new = rewrite_namespaced(new)
        if new != text:
            changed.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")

    moves = planned_moves()
    inits = new_packages()
    clashes = [(old, new) for old, new in moves if new.exists()]
    for old, new in clashes:
        print(f"not moved: {old.relative_to(ROOT)} ({new.relative_to(ROOT)} exists; merge by hand)")
    moves = [(old, new) for old, new in moves if not new.exists()]
    if not args.check:
        for init in sorted(inits):
            init.parent.mkdir(parents=True, exist_ok=True)
            layer = init.parent.name
            docstring = LAYER_DOCSTRINGS.get(layer, "A layer of influxhtm.")
            init.write_text(f'"""{docstring}"""\n', encoding="utf-8")
            subprocess.run(["git", "add", str(init)], cwd=ROOT, check=True)
        for old, new in moves:
            new.parent.mkdir(parents=True, exist_ok=True)
            moved = subprocess.run(["git", "mv", str(old), str(new)], cwd=ROOT, capture_output=True)
            if moved.returncode != 0:  # a file git does not track (yet): moved all the same
                old.rename(new)
            deeper_paths(old, new)
            changed = [new if p == old else p for p in changed]
        for old, _ in moves:  # drop emptied package directories
            folder = old.parent
            while folder != ROOT / PACKAGE and folder.exists() and not any(
                p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
            ):
                shutil.rmtree(folder)
                folder = folder.parent
        python = [str(p) for p in changed if p.suffix == ".py" and p.exists()]
        ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
        if python and Path(ruff).exists():
            sort_imports = [ruff, "check", "--quiet", "--select", "I", "--fix", *python]
            subprocess.run(sort_imports, cwd=ROOT, check=False)

    for path in changed:
        print(f"rewrote {path.relative_to(ROOT)}")
    for old, new in moves:
        print(f"moved {old.relative_to(ROOT)} -> {new.relative_to(ROOT)}")
    for init in sorted(inits):
        print(f"created {init.relative_to(ROOT)}")
    for name in unplaced_modules():
        print(f"unplaced: {name} is in no layer; add it to MOVES in scripts/relayout.py")
    if args.check:
        return 1 if changed or moves or inits else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
