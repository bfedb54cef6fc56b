"""Generated code: compiled once, owned by what it serves, readable in tracebacks.

Encoders, row mappers and schemas are generated per declared class (as attrs
generates `__init__`). They are kept on the class's `Declaration`
(`Declaration.generated`), never in module-level caches: a cache keyed by class
whose values refer back to the class would keep every class alive. The source
of each generated function is registered with `linecache` under a unique file
name, so a traceback through it shows its lines.
"""

from __future__ import annotations

import importlib
import itertools
import linecache
import os
from types import ModuleType
from typing import Any

_SERIAL = itertools.count(1)
#: The optional C extensions (`influxhtm._speedups`, `influxhtm._decode`) once looked for: None when
#: not built.
_EXTENSIONS: dict[str, ModuleType | None] = {}


def extension(name: str, *, always: bool = False) -> Any:
    """The optional C module `influxhtm.<name>`, or None: not built, or `INFLUXHTM_NO_SPEEDUPS` set
    (not "0"; read at each call unless `always`, for what is fixed once, as a class's slot layout)."""
    if not always and os.environ.get("INFLUXHTM_NO_SPEEDUPS", "0") not in ("", "0"):
        return None
    if name not in _EXTENSIONS:
        try:
            _EXTENSIONS[name] = importlib.import_module(f"influxhtm.{name}")
        except ImportError:
            _EXTENSIONS[name] = None
    return _EXTENSIONS[name]


def compile_function(source: str, what: str, namespace: dict[str, Any], name: str) -> Any:
    """Compile `source` in `namespace` and return its function `name`, with `__source__` set.

    `what` names the code in tracebacks (`<influxhtm encoder for Cls #3>`).
    """
    filename = f"<influxhtm {what} #{next(_SERIAL)}>"
    lines = source.splitlines(keepends=True)
    # (size, mtime None: never checked against a file, lines, name), as attrs and dataclasses do.
    linecache.cache[filename] = (len(source), None, lines, filename)
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - generated from checked names only
    function = namespace[name]
    function.__source__ = source
    return function
