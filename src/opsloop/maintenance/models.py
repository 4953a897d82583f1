"""A maintenance window's state beside its work item (`MNT-n`), and the question every alert asks:
is a window holding alerts like me right now?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Field, Session, SQLModel, col, select

from opsloop.maintenance.matchers import Matcher, from_json, match_all
from opsloop.models import WorkItem, json_column, utc_column
from opsloop.types import State

# a window holds matching alerts from its start to its end while it is scheduled or active: the
# times decide, not the timers, so an alert a moment after the start is held even before the
# start timer has been swept
HOLDING_STATES = (State.SCHEDULED.value, State.ACTIVE.value)


class MaintenanceWindow(SQLModel, table=True):
    __tablename__ = "maintenance_windows"

    work_item_id: int = Field(foreign_key="work_items.id", primary_key=True, ondelete="CASCADE")
    matchers: list[list[str]] = json_column(list)  # [name, op, value], Alertmanager's syntax
    starts_at: datetime = utc_column(nullable=False, index=True)
    ends_at: datetime = utc_column(nullable=False, index=True)
    ended_at: datetime | None = utc_column()  # when it really ended (early, or at its end)
    silences: dict[str, Any] = json_column(dict)  # integration -> Alertmanager silence id
    paused: list[str] = json_column(list)  # the items whose clocks it paused, resumed at its end


@dataclass(frozen=True)
class Holding:
    """An open window, as alerts see it."""

    work_item_id: int
    ref: str
    starts_at: datetime
    ends_at: datetime
    matchers: tuple[Matcher, ...]

    def holds(self, labels: dict[str, str], now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at and match_all(self.matchers, labels)


def open_windows(session: Session, now: datetime) -> list[Holding]:
    """Windows that hold alerts at `now` (few: planned work)."""
    rows = session.exec(
        select(MaintenanceWindow, WorkItem.ref)
        .join(WorkItem, col(WorkItem.id) == col(MaintenanceWindow.work_item_id))
        .where(col(WorkItem.state).in_(HOLDING_STATES), col(MaintenanceWindow.starts_at) <= now,
               col(MaintenanceWindow.ends_at) > now)
        .order_by(col(MaintenanceWindow.work_item_id))
    ).all()
    return [Holding(w.work_item_id, ref, w.starts_at, w.ends_at, tuple(from_json(w.matchers)))
            for w, ref in rows]


def holding(windows: list[Holding], labels: dict[str, str], now: datetime) -> Holding | None:
    """The first (oldest) of `windows` that holds an alert with these labels at `now`."""
    return next((w for w in windows if w.holds(labels, now)), None)


def paused_by(session: Session, labels: dict[str, str], now: datetime) -> tuple[str, datetime] | None:
    """For heartbeats: the window that holds a missed check-in with these labels (its ref and end)."""
    window = holding(open_windows(session, now), labels, now)
    return None if window is None else (window.ref, window.ends_at)
