"""Value types shared by the policy file and its sections: durations, sizes, times, days, time zones.

Each parses what people write (`30s`, `"08:00"`, `mon-fri`, `Europe/Berlin`)
and refuses anything else with a message that says what to write instead.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from opsloop.durations import parse_duration


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("a duration is written as text, e.g. 30s, 5m, 1h, 2d")
    return parse_duration(value)


Duration = Annotated[timedelta, BeforeValidator(_duration)]

_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2}
_SIZE = re.compile(r"\s*([0-9]+)\s*([a-z]*)\s*")


def _size(value: Any) -> int:
    """Bytes, from a number or text such as `512KiB`, `1MiB`, `2MB`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.fullmatch(value.lower()) if isinstance(value, str) else None
    if match is None or match.group(2) not in _UNITS:
        raise ValueError("a size is a number of bytes or text such as 512KiB, 1MiB, 2MB")
    return int(match.group(1)) * _UNITS[match.group(2)]


Size = Annotated[int, BeforeValidator(_size)]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_days(value: Any) -> frozenset[int]:
    """`mon-fri`, `mon,wed,fri`, `daily` or a list of day names -> weekday numbers (mon=0)."""
    if isinstance(value, frozenset):
        return value
    items = value if isinstance(value, list) else str(value).replace(" ", "").split(",")
    days: set[int] = set()
    for item in items:
        word = str(item).lower()
        if word in ("daily", "all", "mon-sun"):
            days.update(range(7))
        elif "-" in word:
            start, _, end = word.partition("-")
            if start not in WEEKDAYS or end not in WEEKDAYS:
                raise ValueError(f"unknown day range {item!r} (use e.g. mon-fri)")
            a, b = WEEKDAYS.index(start), WEEKDAYS.index(end)
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
        elif word in WEEKDAYS:
            days.add(WEEKDAYS.index(word))
        else:
            raise ValueError(f"unknown day {item!r} (use mon, tue, ... sun, or a range mon-fri)")
    if not days:
        raise ValueError("at least one day is needed")
    return frozenset(days)


Days = Annotated[frozenset[int], BeforeValidator(parse_days)]


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)") from None
    return value


TimeZone = Annotated[str, AfterValidator(_timezone)]


def _clock_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int):  # YAML 1.1 reads an unquoted 08:00 as sexagesimal 480
        raise ValueError("quote times of day, e.g. \"08:00\"")
    try:
        hours, minutes = str(value).split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"invalid time of day {value!r} (use HH:MM)") from None


ClockTime = Annotated[time, BeforeValidator(_clock_time)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
