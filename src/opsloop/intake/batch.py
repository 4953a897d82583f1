"""One batch of signals in one transaction: the alerts it adds are inserted together at the end."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from opsloop.intake.models import Alert, AlertGroup
from opsloop.maintenance.models import Holding, holding, open_windows
from opsloop.models import WorkItem

T = TypeVar("T")


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
    # read ahead for the whole batch (one query each instead of one per webhook): the active alert
    # rows and groups of the keys its signals name (None: none is stored), and their work items
    stored: dict[tuple[str, str], Alert | None] = field(default_factory=dict)
    groups: dict[tuple[str, str], AlertGroup | None] = field(default_factory=dict)
    locked: dict[int, WorkItem] = field(default_factory=dict)

    def read_ahead(self, keys: Iterable[tuple[str, str]], groups: Iterable[tuple[str, str]]) -> None:
        """Load, in a few queries, the active alerts and groups the batch's signals name, and lock
        their work items (in id order); `find`, `group` and `Intake.item` then answer from memory."""
        s = self.session
        for integration, wanted in _by_integration(keys).items():
            for part in _chunks(wanted):
                self.stored.update(dict.fromkeys(((integration, k) for k in part), None))
                for row in s.exec(select(Alert).where(Alert.integration == integration,
                                                      col(Alert.key).in_(part), col(Alert.active))):
                    self.stored[(integration, row.key)] = row
        for integration, wanted in _by_integration(groups).items():
            for part in _chunks(wanted):
                self.groups.update(dict.fromkeys(((integration, h) for h in part), None))
                for group in s.exec(select(AlertGroup).where(
                        AlertGroup.integration == integration, col(AlertGroup.group_hash).in_(part),
                        col(AlertGroup.active))):
                    self.groups[(integration, group.group_hash)] = group
        ids = sorted({r.work_item_id for r in self.stored.values() if r is not None}
                     | {g.work_item_id for g in self.groups.values() if g is not None})
        for some in _chunks(ids):
            for item in s.exec(select(WorkItem).where(col(WorkItem.id).in_(some))
                               .order_by(col(WorkItem.id)).with_for_update()):
                assert item.id is not None
                self.locked[item.id] = item

    def group(self, integration: str, group_hash: str) -> AlertGroup | None:
        """The active group with this hash: read ahead, else from the database."""
        if (integration, group_hash) in self.groups:
            found = self.groups[(integration, group_hash)]
            return found if found is not None and found.active else None
        return self.session.exec(select(AlertGroup).where(
            AlertGroup.integration == integration, AlertGroup.group_hash == group_hash,
            col(AlertGroup.active))).first()

    def add_group(self, group: AlertGroup) -> None:
        self.session.add(group)
        self.groups[(group.integration, group.group_hash)] = group

    def holding(self, labels: dict[str, str]) -> Holding | None:
        """The maintenance window that holds a new alert with these labels now, if one does."""
        if self.windows is None:
            self.windows = open_windows(self.session, self.now)
        return holding(self.windows, labels, self.now) if self.windows else None

    def find(self, integration: str, keys: list[str]) -> dict[str, AlertRow]:
        """The active rows for these keys: new in this batch, or stored."""
        found: dict[str, AlertRow] = {k: self.new[(integration, k)] for k in keys
                                      if (integration, k) in self.new}
        for k in keys:  # read ahead: a row this batch retired (a resolve) is no longer active
            if k not in found and (integration, k) in self.stored:
                row = self.stored[(integration, k)]
                if row is not None and row.active:
                    found[k] = row
        rest = [k for k in keys if k not in found and (integration, k) not in self.stored]
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


def _by_integration(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    wanted: dict[str, list[str]] = {}
    for integration, key in dict.fromkeys(pairs):
        wanted.setdefault(integration, []).append(key)
    return wanted


CHUNK = 500  # values per IN (...): well under SQLite's limit on bound parameters


def _chunks(values: list[T]) -> Iterable[list[T]]:
    return (values[i:i + CHUNK] for i in range(0, len(values), CHUNK))


def retryable(error: Exception) -> bool:
    """A lost race on an active key, or a transaction the database chose to abort."""
    if isinstance(error, IntegrityError):
        return True
    code = getattr(getattr(error, "orig", None), "sqlstate", None)
    return code in ("40P01", "40001")  # deadlock detected, serialization failure
