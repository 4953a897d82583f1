"""Turning alerts into incidents: dedup by key, group by Alertmanager group, storm-proof.

A batch of signals (many webhooks) is stored in ONE transaction, so a storm
costs one commit per batch rather than one per alert. Known keys update their
incident instead of opening one; an Alertmanager group maps to one incident;
when every alert of an incident is resolved it moves to `mitigated`, and an
alert firing again reopens it (counted as a flap: past `flap_threshold`
flaps its thread stops hearing about each one). Card edits caused by alerts
are debounced, so Slack sees at most one edit per incident per `debounce`.

The partial unique indexes on active keys and groups make concurrent senders
safe on PostgreSQL: a losing insert raises IntegrityError, the whole batch is
retried, and the retry finds the winner's incident — never a duplicate.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, insert, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.bus import Bus
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.events import AlertsUpdated, ItemChanged
from opsloop.intake.models import Alert, AlertGroup
from opsloop.intake.payloads import EVENTS_V2_SEVERITY, AlertmanagerWebhook, AmAlert, V2Event
from opsloop.models import Account, WorkItem
from opsloop.policy import Policy
from opsloop.routing import route
from opsloop.types import Kind, Severity, State
from opsloop.workitems import WorkItems

Signal = tuple[str, AlertmanagerWebhook | V2Event]  # (integration name, payload)

_LABEL_SEVERITY = {
    "critical": Severity.SEV1, "page": Severity.SEV1, "sev1": Severity.SEV1,
    "error": Severity.SEV2, "major": Severity.SEV2, "high": Severity.SEV2, "sev2": Severity.SEV2,
    "warning": Severity.SEV3, "minor": Severity.SEV3, "medium": Severity.SEV3, "sev3": Severity.SEV3,
    "info": Severity.SEV4, "low": Severity.SEV4, "none": Severity.SEV4, "sev4": Severity.SEV4,
}
_OPEN = (State.TRIGGERED.value, State.ACKNOWLEDGED.value, State.MITIGATED.value)


@dataclass
class Outcome:
    """What one signal did: the incidents it opened or touched, and its dedup key (Events v2)."""

    created: list[str] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)
    dedup_key: str | None = None


@dataclass
class _NewAlert:
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


AlertRow = Alert | _NewAlert


@dataclass
class _Batch:
    session: Session
    now: datetime
    touched: dict[int, WorkItem] = field(default_factory=dict)
    quiet: set[int] = field(default_factory=set)  # flapping items: no thread line per flap
    new: dict[tuple[str, str], _NewAlert] = field(default_factory=dict)

    def find(self, integration: str, keys: list[str]) -> dict[str, AlertRow]:
        """The active rows for these keys: new in this batch, or stored."""
        found: dict[str, AlertRow] = {k: self.new[(integration, k)] for k in keys
                                      if (integration, k) in self.new}
        rest = [k for k in keys if k not in found]
        if rest:
            found.update({a.key: a for a in self.session.exec(select(Alert).where(
                Alert.integration == integration, col(Alert.key).in_(rest), col(Alert.active)))})
        return found

    def add(self, row: _NewAlert) -> None:
        self.new[(row.integration, row.key)] = row

    def insert_new(self) -> None:
        if self.new:
            self.session.execute(insert(Alert), [dict(vars(row)) for row in self.new.values()])
            self.new.clear()


class Intake:
    def __init__(
        self, db: Database, policy: Policy, clock: Clock, workitems: WorkItems, bus: Bus, *,
        flap_window: timedelta = timedelta(minutes=10), flap_threshold: int = 3,
        debounce: timedelta = timedelta(seconds=3), max_retries: int = 5,
    ) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.items = workitems
        self.bus = bus
        self.flap_window = flap_window
        self.flap_threshold = flap_threshold
        self.debounce = debounce
        self.max_retries = max_retries

    # ------------------------------------------------------------------ entry points

    def ingest(self, signals: Sequence[Signal]) -> list[Outcome]:
        """Store a batch of signals in one transaction (retried whole on a lost race)."""
        generated = {i: uuid.uuid4().hex for i, (_, p) in enumerate(signals)
                     if isinstance(p, V2Event) and p.dedup_key is None}
        for attempt in range(self.max_retries):
            try:
                with self.db.transaction() as session:
                    audit.lock_chain(session)  # the lock order every writer keeps
                    batch = _Batch(session, self.clock.now())
                    outcomes = [
                        self._alertmanager(batch, name, payload)
                        if isinstance(payload, AlertmanagerWebhook)
                        else self._events_v2(batch, name, payload, generated.get(i))
                        for i, (name, payload) in enumerate(signals)
                    ]
                    self._settle(batch)
                return outcomes
            except (IntegrityError, OperationalError) as error:
                if attempt == self.max_retries - 1 or not _retryable(error):
                    raise
        raise AssertionError("unreachable")

    def retire_alerts(self, session: Session, event: ItemChanged) -> None:
        """Once a person resolves an incident, its alerts and group are history."""
        if event.action in ("resolve", "close") and event.item.id is not None:
            for table in (Alert, AlertGroup):
                session.exec(update(table).where(col(table.work_item_id) == event.item.id)
                             .values(active=False))

    def alert_counts(self, session: Session, item: WorkItem) -> dict[str, int]:
        """How many of the item's alerts are `firing` and `resolved` (empty: it has none)."""
        return dict(session.exec(
            select(Alert.status, func.count()).where(Alert.work_item_id == item.id)
            .group_by(Alert.status)
        ).all())

    # ------------------------------------------------------------------ Alertmanager

    def _alertmanager(self, batch: _Batch, name: str, hook: AlertmanagerWebhook) -> Outcome:
        outcome = Outcome()
        s, now = batch.session, batch.now
        group_hash = hashlib.sha256(hook.groupKey.encode()).hexdigest()
        group = s.exec(select(AlertGroup).where(
            AlertGroup.integration == name, AlertGroup.group_hash == group_hash,
            col(AlertGroup.active))).first()
        known = batch.find(name, [a.key() for a in hook.alerts])
        for am in hook.alerts:
            key = am.key()
            row = known.get(key)
            if row is not None:
                self._update(batch, row, firing=am.status == "firing", summary=_summary(am, hook))
                outcome.touched.append(self._item(batch, row.work_item_id).ref)
                continue
            if am.status == "resolved":
                continue  # resolved before we ever saw it fire: nothing to do
            if group is None:
                item = self._open(batch, name, _title(am, hook), {**hook.commonLabels, **am.labels})
                outcome.created.append(item.ref)
                assert item.id is not None
                group = AlertGroup(integration=name, group_hash=group_hash, group_key=hook.groupKey,
                                   work_item_id=item.id, created_at=now)
                s.add(group)
            new = _NewAlert(integration=name, key=key, work_item_id=group.work_item_id,
                            summary=_summary(am, hook), labels=am.labels, first_seen_at=now,
                            last_seen_at=now)
            batch.add(new)
            known[key] = new
            self._item(batch, group.work_item_id)
        return outcome

    # ------------------------------------------------------------------ Events API v2

    def _events_v2(self, batch: _Batch, name: str, event: V2Event, generated: str | None) -> Outcome:
        s, now = batch.session, batch.now
        key = event.dedup_key or generated or uuid.uuid4().hex
        outcome = Outcome(dedup_key=key)
        row = batch.find(name, [key]).get(key)
        if event.event_action == "trigger":
            assert event.payload is not None
            if row is not None:
                self._update(batch, row, firing=True, summary=event.payload.summary)
                outcome.touched.append(self._item(batch, row.work_item_id).ref)
                return outcome
            labels = {"source": event.payload.source, "severity": event.payload.severity}
            for label in ("component", "group", "class_"):
                value = getattr(event.payload, label)
                if value:
                    labels[label.rstrip("_")] = value
            item = self._open(batch, name, event.payload.summary, labels,
                              severity=EVENTS_V2_SEVERITY[event.payload.severity])
            assert item.id is not None
            batch.add(_NewAlert(integration=name, key=key, work_item_id=item.id,
                                summary=event.payload.summary, labels=labels, first_seen_at=now,
                                last_seen_at=now))
            outcome.created.append(item.ref)
            return outcome
        if row is None:
            return outcome  # acknowledging or resolving what is not open: accepted, nothing to do
        item = self._item(batch, row.work_item_id)
        outcome.touched.append(item.ref)
        if event.event_action == "acknowledge":
            if item.state == State.TRIGGERED.value:
                self.items.act_in(s, item, actor=f"system:{name}", action="acknowledge",
                                  note="acknowledged by the monitoring source", debounce=self.debounce)
        else:
            self._update(batch, row, firing=False, summary=row.summary)
            row.active = False  # PagerDuty semantics: the next trigger opens a new incident
        return outcome

    # ------------------------------------------------------------------ shared

    def _open(self, batch: _Batch, integration: str, title: str, labels: dict[str, str],
              severity: Severity | None = None) -> WorkItem:
        decision = route(self.policy, labels)
        if decision.severity is not None:
            severity = decision.severity
        severity = severity or _LABEL_SEVERITY.get(labels.get("severity", "").lower(), Severity.SEV3)
        tenants = self._known_tenants(batch.session, labels)
        item = self.items.create_in(
            batch.session, Kind.INCIDENT, actor=f"system:{integration}", title=title[:300],
            severity=severity, tenants=tenants, labels={k: str(v) for k, v in labels.items()},
            owner=None, channel=decision.channel,
        )
        assert item.id is not None
        batch.touched[item.id] = item
        return item

    def _known_tenants(self, session: Session, labels: dict[str, str]) -> list[str]:
        wanted = [t for t in labels.get("tenant", "").replace(",", " ").split() if t]
        if not wanted:
            return []
        return list(session.exec(select(Account.id).where(col(Account.id).in_(wanted))))

    def _item(self, batch: _Batch, item_id: int) -> WorkItem:
        item = batch.touched.get(item_id)
        if item is None:
            item = batch.session.exec(
                select(WorkItem).where(WorkItem.id == item_id).with_for_update()).one()
            batch.touched[item_id] = item
        return item

    def _update(self, batch: _Batch, row: AlertRow, *, firing: bool, summary: str) -> None:
        now = batch.now
        row.last_seen_at = now
        row.seen += 1
        row.summary = summary
        if firing and row.status == "resolved":
            row.status = "firing"
            if row.resolved_at is not None and now - row.resolved_at <= self.flap_window:
                row.flaps += 1  # back within the window: a flap, not a new problem
            if row.flaps >= self.flap_threshold:
                batch.quiet.add(row.work_item_id)
        elif not firing and row.status == "firing":
            row.status, row.resolved_at = "resolved", now
        if isinstance(row, Alert):
            batch.session.add(row)
        self._item(batch, row.work_item_id)

    def _settle(self, batch: _Batch) -> None:
        """Move each touched incident where its alerts say, and refresh its card (debounced)."""
        s = batch.session
        batch.insert_new()
        s.flush()
        for item_id, item in batch.touched.items():
            if item.state not in _OPEN:
                continue
            firing = s.exec(select(func.count()).select_from(Alert).where(
                Alert.work_item_id == item_id, Alert.status == "firing")).one()
            actor = f"system:{item.created_by.removeprefix('system:')}"
            if item_id in batch.quiet and item.labels.get("flapping") != "yes":
                item.labels = {**item.labels, "flapping": "yes"}
            quiet = item.labels.get("flapping") == "yes"
            if firing == 0 and item.state in (State.TRIGGERED.value, State.ACKNOWLEDGED.value):
                self.items.act_in(s, item, actor=actor, action="mitigate", debounce=self.debounce,
                                  note="all its alerts resolved", quiet=quiet)
            elif firing > 0 and item.state == State.MITIGATED.value:
                self.items.act_in(s, item, actor=actor, action="reopen", debounce=self.debounce,
                                  note="an alert is firing again", quiet=quiet)
            else:
                self.bus.publish(s, AlertsUpdated(at=batch.now, item=item, debounce=self.debounce))


def _retryable(error: Exception) -> bool:
    """A lost race on an active key, or a transaction the database chose to abort."""
    if isinstance(error, IntegrityError):
        return True
    code = getattr(getattr(error, "orig", None), "sqlstate", None)
    return code in ("40P01", "40001")  # deadlock detected, serialization failure


def _title(alert: AmAlert, hook: AlertmanagerWebhook) -> str:
    name = alert.labels.get("alertname") or hook.commonLabels.get("alertname") or "Alert"
    summary = _summary(alert, hook)
    return f"{name}: {summary}" if summary and summary != name else name


def _summary(alert: AmAlert, hook: AlertmanagerWebhook) -> str:
    for source in (alert.annotations, hook.commonAnnotations):
        for key in ("summary", "description", "message"):
            if source.get(key):
                return source[key]
    return ""
