"""What a user could see of objects: the secrets tests check that no password is in it."""

from __future__ import annotations

import traceback


def all_text(*objects: object) -> str:
    """Everything a user could see of these objects: str, repr and formatted traceback."""
    parts = []
    for obj in objects:
        parts += [str(obj), repr(obj)]
        if isinstance(obj, BaseException):
            parts.append("".join(traceback.format_exception(obj)))
    return "\n".join(parts)
