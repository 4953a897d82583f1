"""A tenant's own maintenance window, as the account catalog writes it: the weekday(s) it opens on and
its local hours, read in the policy's timezone.

    sun 02:00-06:00            Sundays, 02:00 to 06:00
    sat,sun 01:00-05:00        a list of days
    mon-fri 22:00-02:00        a range of days; an end before the start ends the next morning
    daily 03:00-04:00          every day (24:00 is the end of the day)
    sun 02:00-06:00 America/New_York   in the tenant's own time zone (else the policy's `timezone`)

The day is the day the window opens on. A rollout step with `tenant_windows: respect` calls a tenant
only while its window is open (opsloop.rollouts.calls).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SHAPE = re.compile(r"^(?P<days>[a-z,\-]+)\s+(?P<start>\d\d:\d\d)-(?P<end>\d\d:\d\d)$")


@dataclass(frozen=True)
class Window:
    text: str
    days: frozenset[int]  # 0 = Monday
    start: int  # minutes after local midnight
    length: int  # minutes
    zone: str | None = None  # the tenant's own time zone, when the catalog names one

    def timezone(self, default: str) -> str:
        return self.zone or default

    def is_open(self, at: datetime, default: str) -> bool:
        """Whether the window is open at `at`; read in its own zone, else in `default`."""
        timezone = self.timezone(default)
        local = at.astimezone(ZoneInfo(timezone))
        for day in (local.date() - timedelta(days=1), local.date()):
            if day.weekday() in self.days:
                opens = self._opening(day, timezone)
                if opens <= at < opens + timedelta(minutes=self.length):
                    return True
        return False

    def opens_after(self, at: datetime, default: str) -> datetime:
        """When the window next opens after `at` (UTC)."""
        timezone = self.timezone(default)
        today = at.astimezone(ZoneInfo(timezone)).date()
        for offset in range(8):
            day = today + timedelta(days=offset)
            if day.weekday() in self.days and (opens := self._opening(day, timezone)) > at:
                return opens
        raise AssertionError("a window opens at least once a week")  # pragma: no cover

    def _opening(self, day: date, timezone: str) -> datetime:
        local = datetime.combine(day, time(0), tzinfo=ZoneInfo(timezone)) + timedelta(minutes=self.start)
        return local.astimezone(UTC)


def _minutes(text: str, *, end: bool) -> int:
    hours, minutes = int(text[:2]), int(text[3:])
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        raise ValueError(f"{text}: not a time of day (00:00 to 23:59, or 24:00 as an end)")
    return hours * 60 + minutes


def _days(text: str) -> frozenset[int]:
    if text == "daily":
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"{part!r}: write days as mon, tue, wed, thu, fri, sat, sun, a range (mon-fri) "
                             "or daily")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update(DAYS.index(d) % 7 for d in (DAYS * 2)[a : (b if b >= a else b + 7) + 1])
    return frozenset(days)


def parse(text: str) -> Window:
    """A window from its catalog text; ValueError says what is wrong."""
    words = re.sub(r"\s*([,-])\s*", r"\1", text.strip()).split()  # "sat, sun 01:00 - 05:00" too
    zone = words.pop() if len(words) == 3 else None
    if zone is not None:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{text!r}: unknown time zone {zone!r} (use an IANA name like Europe/Berlin)"
            ) from None
    cleaned = " ".join(words).lower()
    shape = _SHAPE.match(cleaned)
    if shape is None:
        raise ValueError(f"{text!r}: write days and local hours, e.g. 'sun 02:00-06:00' or "
                         "'sat,sun 01:00-05:00'")
    start = _minutes(shape["start"], end=False)
    stop = _minutes(shape["end"], end=True)
    if start == stop:
        raise ValueError(f"{text!r}: the window opens and closes at the same time")
    length = stop - start if stop > start else stop + 24 * 60 - start
    return Window(" ".join([cleaned, *([zone] if zone else [])]), _days(shape["days"]), start, length, zone)
