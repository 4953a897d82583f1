"""One batch of signals in one transaction: the alerts it adds are inserted together at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from opsloop.intake.models import Alert
from opsloop.maintenance.models import Holding, holding, open_windows
from opsloop.models import WorkItem


@dataclass
class Outcome:
    """What one signal did: the incidents it opened or touched, and its dedup key (Events v2)."""

    created: list[str] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)
    dedup_key: str | None = None


@dataclass
class NewAlert:
    """An alert first seen in this batch: inserted with the others in one statement at the end
    (building an ORM object per alert cost more than everything else in a storm)."""

    integration: str
    key: str
    work_item_id: int
    summary: str
    labels: dict[str, str]
    first_seen_at: datetime
    last_seen_at: datetime
    status: str = "firing"
    active: bool = True
    resolved_at: datetime | None = None
    seen: int = 1
    flaps: int = 0
    context: dict[str, Any] = field(default_factory=dict)


AlertRow = Alert | NewAlert


@dataclass
class Batch:
    session: Session
    now: datetime
    touched: dict[int, WorkItem] = field(default_factory=dict)
    quiet: set[int] = field(default_factory=set)  # flapping items: no thread line per flap
    new: dict[tuple[str, str], NewAlert] = field(default_factory=dict)
    windows: list[Holding] | None = None  # the open maintenance windows, read once per batch

    def holding(self, labels: dict[str, str]) -> Holding | None:
        """The maintenance window that holds a new alert with these labels now, if one does."""
        if self.windows is None:
            self.windows = open_windows(self.session, self.now)
        return holding(self.windows, labels, self.now) if self.windows else None

    def find(self, integration: str, keys: list[str]) -> dict[str, AlertRow]:
        """The active rows for these keys: new in this batch, or stored."""
        found: dict[str, AlertRow] = {k: self.new[(integration, k)] for k in keys
                                      if (integration, k) in self.new}
        rest = [k for k in keys if k not in found]
        if rest:
            found.update({a.key: a for a in self.session.exec(select(Alert).where(
                Alert.integration == integration, col(Alert.key).in_(rest), col(Alert.active)))})
        return found

    def add(self, row: NewAlert) -> None:
        self.new[(row.integration, row.key)] = row

    def insert_new(self) -> None:
        if self.new:
            self.session.execute(insert(Alert), [dict(vars(row)) for row in self.new.values()])
            self.new.clear()


def retryable(error: Exception) -> bool:
    """A lost race on an active key, or a transaction the database chose to abort."""
    if isinstance(error, IntegrityError):
        return True
    code = getattr(getattr(error, "orig", None), "sqlstate", None)
    return code in ("40P01", "40001")  # deadlock detected, serialization failure
