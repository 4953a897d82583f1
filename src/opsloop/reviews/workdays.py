"""Due dates on a calendar: whole days count working days, the rest counts working time.

`due(calendar, start, 5d)` is the close of business of the fifth working day after the day of
`start` (a holiday or a weekend is no working day), which is what people mean by "due in five
working days"; `due(calendar, start, 4h)` is four working hours from `start`. On the `24x7`
calendar every day and every hour counts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlmodel import Session

from opsloop.policy import Policy
from opsloop.sla.calendars import BusinessHours, WorkingTime, working_time
from opsloop.timers.models import Timer

_DAY = timedelta(days=1)


def calendar_of(policy: Policy) -> WorkingTime:
    """The calendar reviews and follow-ups fall due on: the policy's `reviews.calendar`."""
    return working_time(policy, policy.reviews.calendar)


def due(calendar: WorkingTime, start: datetime, duration: timedelta) -> datetime:
    """When something `duration` from `start` is due, on `calendar`."""
    if not isinstance(calendar, BusinessHours):
        return start.astimezone(UTC) + duration
    days, rest = duration.days, duration - timedelta(days=duration.days)
    if days == 0:
        return calendar.add(start, rest)
    day = start.astimezone(calendar.zone).date()
    counted = 0
    while counted < days:
        day += _DAY
        if day.weekday() in calendar.days and day not in calendar.holidays:
            counted += 1
    closes = datetime.combine(day, calendar.closes, tzinfo=calendar.zone).astimezone(UTC)
    return calendar.add(closes, rest) if rest else closes


def overdue_by(calendar: WorkingTime, due_at: datetime, now: datetime) -> timedelta:
    """How much working time has passed since `due_at` (zero while not yet due)."""
    return calendar.elapsed(due_at, now)


class Reminded(Protocol):
    """A row reminded by durable timer (a review, a follow-up): counts its reminders."""

    id: int | None
    work_item_id: int
    reminders: int


def count_reminder(session: Session, row: Reminded, timer: Timer, *, key: str, calendar: WorkingTime,
                   every: timedelta, now: datetime) -> str:
    """Count this reminder of `row`; the overdue one comes again `every` later (on `calendar`), a timer
    of the same kind whose payload names the row by `key`. Returns the stage (soon | overdue)."""
    stage = str(timer.payload.get("stage"))
    row.reminders += 1
    session.add(row)
    if stage == "overdue":
        session.add(Timer(kind=timer.kind, due_at=due(calendar, now, every), created_at=now,
                          work_item_id=row.work_item_id, payload={key: row.id, "stage": "overdue"}))
    return stage
