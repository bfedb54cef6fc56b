"""Process helpers shared by the managed influxd and the sweep's run processes.

- `die_with_parent`: in a child just forked, ask Linux to SIGKILL it when its
  parent ends (``prctl(PR_SET_PDEATHSIG)``), so nothing outlives its owner.
  The signal fires when the *thread* that forked the child ends: fork only from
  a thread that outlives the child.
- `owner_mark` / `owner_is_gone`: "pid start-time" of a process, to tell later
  whether it still runs (the start time tells a reused pid apart).
- `exit_cause`: a process's exit status in words.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Any:
    """libc's prctl, looked up once (not in a child after fork), or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()


def die_with_parent(parent_pid: int) -> None:
    """In a forked child: be killed (SIGKILL) when the parent ends; exit now if it already has."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent ended before the request took effect
        os._exit(1)


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None if unknown or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def owner_mark(pid: int | None = None) -> str:
    """'pid start-time' of a process (this one by default); the start time is '-' where unknown."""
    pid = os.getpid() if pid is None else pid
    return f"{pid} {_start_time(pid) or '-'}"


def owner_is_gone(mark: str) -> bool:
    """True when the process named by an `owner_mark` no longer runs (its pid is free or reused)."""
    pid_text, start = mark.split()
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # another user's process with that pid: it runs
    return start != "-" and _start_time(pid) != start


def exit_cause(returncode: int) -> str:
    """'exit code 3' or 'killed by signal SIGSEGV' from a `Popen.returncode`-style code."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"killed by signal {name}"
    return f"exit code {returncode}"
