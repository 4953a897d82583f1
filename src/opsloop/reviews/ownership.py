"""Who owns a review, and the durable timers that remind them (or, while nobody owns it, the people
who may give it an owner): `soon` (`remind_before` the due date), then `overdue` at the due date and
every `remind_every` until it is published."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from opsloop.models import TimelineEvent, WorkItem
from opsloop.reviews.models import Review
from opsloop.timers.models import Timer
from opsloop.types import is_system

REMIND = "review.remind"  # the timer kind: payload {review: id, stage: soon | overdue}
UNASSIGNED = ""  # the owner of a review no person worked on: those allowed to assign it hear of it


def first_owner(session: Session, item: WorkItem, *, by: str) -> str:
    """Who owns a new review: the item's owner; else `by` (who resolved it or asked for the review),
    whoever acknowledged it last, or declared it, when a person; else nobody yet (`UNASSIGNED`).
    A machine never owns a review: nobody would write it."""
    acked = session.exec(
        select(TimelineEvent.actor)
        .where(TimelineEvent.work_item_id == item.id, TimelineEvent.action == "acknowledge")
        .order_by(col(TimelineEvent.id).desc())
    ).all()
    for who in (item.owner, by, *acked, item.created_by):
        if who and not is_system(who):
            return who
    return UNASSIGNED


def reminder(review: Review, due_at: datetime, stage: str, now: datetime) -> Timer:
    """The reminder of `review` at `due_at` (`stage`: soon | overdue)."""
    return Timer(kind=REMIND, due_at=due_at, created_at=now, work_item_id=review.work_item_id,
                 payload={"review": review.id, "stage": stage})


def arm(session: Session, review: Review, *, remind_before: timedelta, now: datetime) -> None:
    """A new review's reminders: due soon (unless that is past already), and overdue."""
    soon = review.due_at - remind_before
    if soon > now:
        session.add(reminder(review, soon, "soon", now))
    session.add(reminder(review, review.due_at, "overdue", now))
