"""Working time: which moments count against a target.

A `WorkingTime` turns a target into a due moment (`add`) and measures how
much counted time lies between two moments (`elapsed`). `AlwaysOn` (the
`24x7` calendar) counts every second; `BusinessHours` counts only its
working hours on its working days, in its own time zone, skipping holidays.

All arithmetic is on absolute (UTC) instants: each working day's window is
built from the local wall clock (09:00-17:00 in Europe/Berlin) and converted
to UTC, so a DST change moves the window's UTC position but never its local
hours, and a night that is one hour shorter or longer counts nothing either
way. Durations in a business calendar are working time: `2h` is two working
hours and `2d` is 48 working hours (six 8-hour days), as in Zendesk and Jira
Service Management.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from opsloop.policy import Policy
from opsloop.sla.config import Calendar

ALWAYS = "24x7"
_ZERO = timedelta(0)
# Business calendars have at least one working day a week and finitely many
# holidays, so a window is always found within this many days.
_MAX_DAYS = 366 * 50


class WorkingTime(Protocol):
    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment at which `duration` of working time has passed since `start`."""
        ...

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """How much working time lies between `start` and `end` (zero if end <= start)."""
        ...


class AlwaysOn:
    """The `24x7` calendar: every second counts."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        return start.astimezone(UTC) + duration

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        return max(_ZERO, end.astimezone(UTC) - start.astimezone(UTC))


@dataclass(frozen=True)
class BusinessHours:
    days: frozenset[int]  # mon=0
    opens: time
    closes: time
    zone: ZoneInfo
    holidays: frozenset[date] = frozenset()

    @classmethod
    def from_policy(cls, calendar: Calendar, default_zone: str) -> BusinessHours:
        return cls(days=calendar.days, opens=calendar.opens, closes=calendar.closes,
                   zone=ZoneInfo(calendar.timezone or default_zone),
                   holidays=frozenset(calendar.holidays))

    def _windows(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working windows (UTC) from the local day containing `start` onwards."""
        day = start.astimezone(self.zone).date()
        for _ in range(_MAX_DAYS):
            if day.weekday() in self.days and day not in self.holidays:
                opens = datetime.combine(day, self.opens, tzinfo=self.zone).astimezone(UTC)
                closes = datetime.combine(day, self.closes, tzinfo=self.zone).astimezone(UTC)
                if closes > opens:  # a window that a DST gap swallowed counts nothing
                    yield opens, closes
            day += timedelta(days=1)
        raise ValueError("no working window within 50 years; check the calendar")

    def add(self, start: datetime, duration: timedelta) -> datetime:
        # UTC throughout: Python subtracts two datetimes of the same zone as wall clocks
        start = start.astimezone(UTC)
        remaining = duration
        if remaining <= _ZERO:
            return start
        for opens, closes in self._windows(start):
            begin = max(start, opens)
            if begin >= closes:
                continue
            available = closes - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable: _windows never ends without raising")

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        total = _ZERO
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if end <= start:
            return total
        for opens, closes in self._windows(start):
            if opens >= end:
                break
            overlap = min(end, closes) - max(start, opens)
            if overlap > _ZERO:
                total += overlap
        return total

    def is_working(self, moment: datetime) -> bool:
        return self.elapsed(moment, moment + timedelta(seconds=1)) > _ZERO


def working_time(policy: Policy, name: str) -> WorkingTime:
    """The calendar called `name` in the policy's `sla.calendars` (or `24x7`).

    A calendar that has disappeared from the policy since a clock started
    counts as 24x7: a clock keeps running rather than stopping silently.
    """
    calendar = policy.sla.calendars.get(name)
    if name == ALWAYS or calendar is None:
        return AlwaysOn()
    return BusinessHours.from_policy(calendar, policy.timezone)
