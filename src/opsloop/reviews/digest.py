"""What the leadership digest says of reviews: those overdue, follow-ups overdue, and recurrences."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, func, select

from opsloop.models import WorkItem
from opsloop.reviews import recurrence
from opsloop.reviews.models import PUBLISHED, FollowUp, Review

SHOWN = 8


@dataclass(frozen=True)
class Late:
    ref: str  # the review's item (INC-4) or the follow-up (ACT-2)
    what: str
    owner: str
    due_at: datetime


@dataclass
class ReviewFigures:
    reviews_overdue: list[Late] = field(default_factory=list)
    reviews_overdue_count: int = 0
    followups_overdue: list[Late] = field(default_factory=list)
    followups_overdue_count: int = 0
    recurrences: list[tuple[str, str, str]] = field(default_factory=list)  # (ref, title, words), the week's


def gather(session: Session, *, week_start: datetime, until: datetime, now: datetime) -> ReviewFigures:
    late_reviews = (col(Review.state) != PUBLISHED, col(Review.due_at) <= now)
    late_followups = (col(FollowUp.closed_at).is_(None), col(FollowUp.due_at) <= now)
    reviews = session.exec(select(Review, WorkItem.ref, WorkItem.title)
                           .join(WorkItem, col(WorkItem.id) == col(Review.work_item_id))
                           .where(*late_reviews).order_by(col(Review.due_at)).limit(SHOWN)).all()
    followups = session.exec(select(FollowUp).where(*late_followups).order_by(col(FollowUp.due_at))
                             .limit(SHOWN)).all()
    return ReviewFigures(
        reviews_overdue=[Late(ref, title, r.owner, r.due_at) for r, ref, title in reviews],
        reviews_overdue_count=session.exec(select(func.count()).select_from(Review).where(*late_reviews)).one(),
        followups_overdue=[Late(f.ref, f.what, f.owner, f.due_at) for f in followups],
        followups_overdue_count=session.exec(select(func.count()).select_from(FollowUp)
                                             .where(*late_followups)).one(),
        recurrences=recurrence.since(session, week_start, until, SHOWN),
    )
