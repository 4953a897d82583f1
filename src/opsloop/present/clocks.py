"""How an SLA clock reads on a card, and its buttons (pause / resume)."""

from __future__ import annotations

from datetime import datetime, timedelta

from opsloop.durations import format_duration
from opsloop.messages import Button
from opsloop.models import WorkItem
from opsloop.sla.calendars import BusinessHours
from opsloop.sla.clocks import ClockBook
from opsloop.sla.models import BREACHED, MET, NO_RESPONSE, PAUSED, RUNNING, SlaClock

LABELS = {"response": "Response", "update": "Update", "resolution": "Resolution",
          "rollout": "Rollout deadline"}


def human(delta: timedelta) -> str:
    """A duration for people: seconds only while they matter."""
    seconds = max(0, round(delta.total_seconds()))
    if seconds >= 600:
        seconds -= seconds % 60
    return format_duration(timedelta(seconds=seconds)) if seconds else "0s"


def describe(book: ClockBook, clock: SlaClock, now: datetime) -> str:
    """How a clock reads on a card: `3m left`, `paused, 3m left`, `met in 4m`, `breached 2m ago`."""
    target = timedelta(seconds=clock.target_seconds)
    if clock.state == RUNNING:
        text = f"{human(book.left(clock, now))} left"
        calendar = book.calendar(clock)
        if isinstance(calendar, BusinessHours) and not calendar.is_working(now):
            text += " (outside business hours)"
        return text
    if clock.state == PAUSED:
        return f"paused, {human(book.left(clock, now))} left"
    if clock.state == MET:
        return f"met in {human(book.used(clock, now))}"
    if clock.state == BREACHED:
        if clock.stopped_at is not None:
            return f"missed by {human(book.used(clock, now) - target)}"
        assert clock.settled_at is not None
        return f"breached {human(now - clock.settled_at)} ago"
    if clock.state == NO_RESPONSE:
        return "no response (the alerts resolved with nobody acting)"
    return "stopped"


def card_buttons(item: WorkItem, clocks: list[SlaClock]) -> list[Button]:
    states = {clock.state for clock in clocks}
    if RUNNING in states:
        return [Button(label="Pause clock", action="clock.pause", value=item.ref)]
    if PAUSED in states:
        return [Button(label="Resume clock", action="clock.resume", value=item.ref)]
    return []
