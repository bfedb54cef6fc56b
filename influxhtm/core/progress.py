"""Progress bars on long work (large writes, imports, sweeps, batch runs): one rule for all.

`progress=None` (the default) shows a bar only when stderr is a terminal, and
only once the work has taken a couple of seconds (short work stays quiet);
`progress=True` shows it at once, `progress=False` never. Bars go to stderr, so
pipes and logs stay clean.
"""

from __future__ import annotations

import sys
from typing import Any

#: Seconds of work before an automatic bar appears (tqdm's `delay`).
AUTO_DELAY = 2.0


def wanted(progress: object) -> bool:
    """Whether to show a bar: `progress` when given, else whether stderr is a terminal."""
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    if not isinstance(progress, bool):
        from influxhtm.core.errors import ValidationError

        raise ValidationError({"progress": [f"{progress!r} is not True, False or None"]})
    return progress


def progress_bar(progress: bool | None, *, total: int | None, unit: str, desc: str) -> Any:
    """A tqdm bar on stderr (disabled as `wanted` says); use it as a context manager."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        unit=unit,
        desc=desc,
        disable=not wanted(progress),
        delay=AUTO_DELAY if progress is None else 0.0,
        file=sys.stderr,
    )
