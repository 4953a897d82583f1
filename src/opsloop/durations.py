"""Durations as people write them in policy and runbook files: 30s, 5m, 1h30m, 2d, 1w."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"(?:\d+[smhdw])+")


def parse_duration(text: str) -> timedelta:
    """Parse `30s`, `5m`, `1h`, `2d`, `1w` or a sum such as `1h30m`.

    Raises ValueError with the accepted forms; zero is refused because every
    duration in opsloop is a wait, a target or a length.
    """
    value = text.strip().lower()
    if not _WHOLE.fullmatch(value):
        raise ValueError(f"invalid duration {text!r} (write e.g. 30s, 5m, 1h, 2d, 1w or 1h30m)")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(value))
    if seconds == 0:
        raise ValueError(f"duration {text!r} must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The inverse of parse_duration, largest units first (`1h30m`, `45s`)."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)
