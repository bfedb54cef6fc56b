"""Generated code: compiled once, owned by what it serves, readable in tracebacks.

Encoders, row mappers and schemas are generated per declared class (as attrs
generates `__init__`). They are kept on the class's `Declaration`
(`Declaration.generated`), never in module-level caches: a cache keyed by class
whose values refer back to the class would keep every class alive. The source
of each generated function is registered with `linecache` under a unique file
name, so a traceback through it shows its lines.
"""

from __future__ import annotations

import itertools
import linecache
from typing import Any

_SERIAL = itertools.count(1)


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
