"""Time, behind a port so tests and benchmarks can control it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ShiftedClock:
    """The system clock, moved forward on request: the console's `tick 5m` and `at 18:00`
    let a new user watch warnings, breaches and pages without waiting for them."""

    def __init__(self, base: Clock | None = None) -> None:
        self.base = base or SystemClock()
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return self.base.now() + self.offset

    def move_to(self, moment: datetime) -> None:
        """Move to `moment`, never back: what happened stays in the past."""
        ahead = moment - self.now()
        if ahead > timedelta(0):
            self.offset += ahead
