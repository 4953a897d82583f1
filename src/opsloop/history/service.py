"""`opsloop history import FILE`: past work items, stored closed, so the digest and health have history.

An import is one transaction (all or nothing). Each item the file names is
created closed (with the times it was opened, acknowledged and resolved),
marked imported (`ImportedItem`, keyed by the file's source and id, and the
`imported` label), and audited as one `history.imported` event; importing the
same ids again updates what changed (one `history.updated` event each) and
leaves the rest alone. Nothing is announced: no card, no clock, no page, no
customer notice, for work that ended long ago.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, update
from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.errors import ConfigError
from opsloop.history.formats import PastItem, Reading, read_history
from opsloop.history.models import ImportedItem
from opsloop.models import Account, Counter, TimelineEvent, WorkItem, WorkItemTenant
from opsloop.types import Kind, State

CHUNK = 500  # ids per IN list


@dataclass(frozen=True)
class HistoryResult:
    source: str
    created: int
    updated: int
    unchanged: int
    skipped: dict[str, int]
    first: datetime | None  # the earliest opened_at in the file
    last: datetime | None  # the latest resolved_at


def import_history(db: Database, clock: Clock, path: Path, *, actor: str) -> HistoryResult:
    now = clock.now()
    reading = read_history(path, now=now)
    with db.transaction() as session:
        audit.lock_chain(session)  # the lock order every writer keeps (see opsloop.audit)
        _check_tenants(session, path, reading)
        existing = _existing(session, reading.source, [item.id for _, item in reading.items])
        fresh = [(where, item) for where, item in reading.items if item.id not in existing]
        _refuse_kind_changes(path, reading, existing)
        _create(session, reading.source, [item for _, item in fresh], now=now, actor=actor)
        tenants = _tenants(session, [row.id or 0 for _, row in existing.values()])
        updated = sum(_update(session, reading.source, item, *existing[item.id], tenants, now=now,
                              actor=actor) for _, item in reading.items if item.id in existing)
    items = [item for _, item in reading.items]
    return HistoryResult(reading.source, len(fresh), updated, len(existing) - updated, reading.skipped,
                         min((i.opened_at for i in items), default=None),
                         max((i.resolved_at for i in items), default=None))


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    return (values[i:i + CHUNK] for i in range(0, len(values), CHUNK))


def _check_tenants(session: Session, path: Path, reading: Reading) -> None:
    wanted = sorted({t for _, item in reading.items for t in item.tenants})
    known = {t for part in _chunks(wanted)
             for t in session.exec(select(Account.id).where(col(Account.id).in_(part)))}
    problems = [f"{path}: {where}: tenants: unknown tenant {t!r} (add it to the account catalog first: "
                "opsloop accounts import FILE)" for where, item in reading.items for t in item.tenants
                if t not in known]
    if problems:
        raise ConfigError("\n".join(problems[:50]))


def _existing(session: Session, source: str, ids: Sequence[str]) -> dict[str, tuple[ImportedItem, WorkItem]]:
    found: dict[str, tuple[ImportedItem, WorkItem]] = {}
    for part in _chunks(ids):
        for mark, item in session.exec(
            select(ImportedItem, WorkItem).join(WorkItem, col(WorkItem.id) == col(ImportedItem.work_item_id))
            .where(col(ImportedItem.source) == source, col(ImportedItem.external_id).in_(part))
        ).all():
            found[mark.external_id] = (mark, item)
    return found


def _tenants(session: Session, item_ids: list[int]) -> dict[int, list[str]]:
    """The tenants of many items in a few queries (not one per item on a re-import)."""
    found: dict[int, list[str]] = {item_id: [] for item_id in item_ids}
    for start in range(0, len(item_ids), CHUNK):
        part = item_ids[start:start + CHUNK]
        for item_id, tenant in session.exec(select(WorkItemTenant.work_item_id, WorkItemTenant.tenant_id)
                                            .where(col(WorkItemTenant.work_item_id).in_(part))):
            found[item_id].append(tenant)
    return {item_id: sorted(tenants) for item_id, tenants in found.items()}


def _refuse_kind_changes(path: Path, reading: Reading,
                         existing: dict[str, tuple[ImportedItem, WorkItem]]) -> None:
    problems = [f"{path}: {where}: kind: {item.id!r} was imported as {existing[item.id][1].ref} "
                f"({existing[item.id][1].kind}); its kind cannot change"
                for where, item in reading.items
                if item.id in existing and existing[item.id][1].kind != item.kind.value]
    if problems:
        raise ConfigError("\n".join(problems[:50]))


def _labels(source: str, item: PastItem) -> dict[str, str]:
    return {"imported": source, "imported_id": item.id, **({"service": item.service} if item.service else {})}


def _values(source: str, item: PastItem) -> dict[str, Any]:
    """The work item's columns this import sets (compared on a re-import)."""
    return {"title": item.title, "severity": item.severity.value, "labels": _labels(source, item),
            "created_at": item.opened_at, "acknowledged_at": item.acknowledged_at,
            "resolved_at": item.resolved_at, "closed_at": item.resolved_at, "updated_at": item.resolved_at}


def _snapshot(item: PastItem, ref: str, source: str) -> dict[str, Any]:
    return {"ref": ref, "source": source, "id": item.id, "kind": item.kind.value, "title": item.title,
            "severity": item.severity.value, "tenants": list(item.tenants), "service": item.service,
            "opened_at": item.opened_at, "acknowledged_at": item.acknowledged_at,
            "resolved_at": item.resolved_at}


def _numbers(session: Session, kind: Kind, count: int) -> range:
    """`count` fresh numbers of the kind's sequence (the same counter `/incident declare` uses)."""
    last = session.exec(update(Counter).where(col(Counter.name) == kind.value)  # type: ignore[call-overload]
                        .values(value=col(Counter.value) + count).returning(col(Counter.value))).one()[0]
    return range(last - count + 1, last + 1)


def _create(session: Session, source: str, items: list[PastItem], *, now: datetime, actor: str) -> None:
    """Multi-row inserts (an export holds thousands of items; one round trip each took seconds)."""
    items = sorted(items, key=lambda i: (i.opened_at, i.id))  # numbers follow the order things happened
    refs: dict[str, PastItem] = {}
    rows: list[dict[str, Any]] = []
    for kind in (Kind.INCIDENT, Kind.ESCALATION):
        mine = [i for i in items if i.kind is kind]
        for number, item in zip(_numbers(session, kind, len(mine)) if mine else (), mine, strict=True):
            refs[f"{kind.prefix}-{number}"] = item
            rows.append({"ref": f"{kind.prefix}-{number}", "kind": kind.value, "number": number,
                         "state": State.CLOSED.value, "created_by": actor, **_values(source, item)})
    if not rows:
        return
    inserted = session.execute(
        insert(WorkItem).returning(col(WorkItem.ref), col(WorkItem.id), sort_by_parameter_order=True), rows)
    ids: dict[str, int] = {row[0]: row[1] for row in inserted}  # (a Result has keys(): dict() misreads it)
    marks, tenants, lines = [], [], []
    for ref, item in refs.items():
        marks.append({"source": source, "external_id": item.id, "work_item_id": ids[ref], "imported_at": now,
                      "updated_at": now})
        tenants += [{"work_item_id": ids[ref], "tenant_id": t} for t in sorted(set(item.tenants))]
        lines.append({"work_item_id": ids[ref], "at": now, "actor": actor, "action": "imported",
                      "text": f"Imported from {source} (id {item.id})"})
    for model, values in ((ImportedItem, marks), (WorkItemTenant, tenants), (TimelineEvent, lines)):
        if values:
            session.execute(insert(model), values)
    audit.record_many(session, (audit.Entry(at=now, actor=actor, action="history.imported", subject=ref,
                                            after=_snapshot(item, ref, source))
                                for ref, item in refs.items()))


def _update(session: Session, source: str, item: PastItem, mark: ImportedItem, row: WorkItem,
            current: dict[int, list[str]], *, now: datetime, actor: str) -> bool:
    """Bring an imported item in line with the file again; False when nothing changed."""
    wanted = _values(source, item)
    before = {k: getattr(row, k) for k in wanted}
    tenants = sorted(set(item.tenants))
    had = current.get(row.id or 0, [])
    changed = {k: v for k, v in wanted.items() if before[k] != v}
    if not changed and had == tenants:
        return False
    for key, value in changed.items():
        setattr(row, key, value)
    session.add(row)
    if had != tenants:
        session.exec(delete(WorkItemTenant).where(col(WorkItemTenant.work_item_id) == row.id))  # type: ignore[call-overload]
        session.add_all([WorkItemTenant(work_item_id=row.id or 0, tenant_id=t) for t in tenants])
        changed["tenants"], before["tenants"] = tenants, had
    mark.updated_at = now
    session.add(mark)
    audit.record(session, at=now, actor=actor, action="history.updated", subject=row.ref,
                 before={k: before[k] for k in changed}, after={"source": source, "id": item.id, **changed})
    return True
