"""Recurrence: a new work item on a theme whose follow-ups were all closed.

When an incident or escalation is created, its theme (`reviews.themes`) is kept (`ItemTheme`). If
earlier items of that theme had follow-ups and every one of them is closed, the new item recurred:
"recurred 9 days after ACT-4 was closed" (the follow-up closed last). Its card, its review, the
product packet and the digest say so (`Recurred` is published for the thread).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.bus import Bus
from opsloop.events import ItemCreated, Recurred
from opsloop.models import WorkItem
from opsloop.reviews.models import FollowUp, ItemTheme, Recurrence
from opsloop.reviews.themes import theme_of
from opsloop.types import OPSLOOP, Kind


def words(recurrence: Recurrence, ref: str) -> str:
    days = max(0, (recurrence.at - recurrence.closed_at).days)
    return f"recurred {days} day{'s' if days != 1 else ''} after {ref} was closed"


class Recurrences:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def on_created(self, session: Session, event: ItemCreated) -> None:
        """Keep the new item's theme; if that theme's follow-ups are all closed, it recurred."""
        item = event.item
        if item.kind not in (Kind.INCIDENT, Kind.ESCALATION) or item.id is None:
            return
        theme = theme_of(session, item)
        if theme is None:
            return
        session.add(ItemTheme(work_item_id=item.id, theme=theme))
        earlier = (select(FollowUp).join(ItemTheme, col(ItemTheme.work_item_id) == col(FollowUp.work_item_id))
                   .where(ItemTheme.theme == theme, col(FollowUp.work_item_id) != item.id))
        # one read answers both: an open follow-up sorts first (then it did not recur), else the last closed
        last = session.exec(earlier.order_by(col(FollowUp.closed_at).desc().nulls_first(),
                                             col(FollowUp.id).desc())).first()
        if last is None or last.closed_at is None or last.id is None:
            return
        found = Recurrence(work_item_id=item.id, theme=theme, followup_id=last.id, closed_at=last.closed_at,
                           at=event.at)
        session.add(found)
        said = words(found, last.ref)
        audit.record(session, at=event.at, actor=OPSLOOP, action="item.recurred", subject=item.ref,
                     after={"theme": theme, "followup": last.ref, "closed_at": last.closed_at})
        self.bus.publish(session, Recurred(at=event.at, item=item, theme=theme, followup=last.ref, text=said))


def of_items(session: Session, item_ids: Iterable[int]) -> dict[int, str]:
    """Work item id -> "recurred 9 days after ACT-4 was closed", for those that recurred."""
    ids = list(item_ids)
    if not ids:
        return {}
    rows = session.exec(select(Recurrence, FollowUp.ref).join(FollowUp, col(FollowUp.id) == col(
        Recurrence.followup_id)).where(col(Recurrence.work_item_id).in_(ids))).all()
    return {r.work_item_id: words(r, ref) for r, ref in rows}


def of_item(session: Session, item: WorkItem) -> str | None:
    return of_items(session, [item.id]).get(item.id) if item.id is not None else None


def since(session: Session, start: datetime, until: datetime, limit: int = 8) -> list[tuple[str, str, str]]:
    """(ref, title, words) of the items that recurred between `start` and `until` (the digest's list)."""
    rows = session.exec(select(Recurrence, WorkItem.ref, WorkItem.title, FollowUp.ref)
                        .join(WorkItem, col(WorkItem.id) == col(Recurrence.work_item_id))
                        .join(FollowUp, col(FollowUp.id) == col(Recurrence.followup_id))
                        .where(col(Recurrence.at) >= start, col(Recurrence.at) < until)
                        .order_by(col(Recurrence.at)).limit(limit)).all()
    return [(ref, title, words(r, act)) for r, ref, title, act in rows]
