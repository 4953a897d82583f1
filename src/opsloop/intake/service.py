"""Turning alerts into incidents: dedup by key, group by Alertmanager group, storm-proof.

A batch of signals (many webhooks) is stored in ONE transaction, so a storm
costs one commit per batch rather than one per alert. Known keys update their
incident instead of opening one; an Alertmanager group maps to one incident;
when every alert of an incident is resolved it moves to `mitigated`, and an
alert firing again reopens it (counted as a flap: past `flap_threshold`
flaps its thread stops hearing about each one). Card edits caused by alerts
are debounced, so Slack sees at most one edit per incident per `debounce`.
Events API v2 keeps PagerDuty's semantics instead (`opsloop.intake.events_v2`):
a `resolve` resolves.

The partial unique indexes on active keys and groups make concurrent senders
safe on PostgreSQL: a losing insert raises IntegrityError, the whole batch is
retried, and the retry finds the winner's incident — never a duplicate.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.bus import Bus
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.events import AlertsUpdated, ItemChanged
from opsloop.intake.batch import AlertRow, Batch, NewAlert, Outcome, retryable
from opsloop.intake.context import AlertContext, alert_context
from opsloop.intake.events_v2 import EventsV2
from opsloop.intake.held import HELD, hold, keep_held
from opsloop.intake.models import Alert, AlertGroup
from opsloop.intake.payloads import EVENTS_V2_SEVERITY, AlertmanagerWebhook, AmAlert, V2Event
from opsloop.models import Account, WorkItem
from opsloop.policy import Policy
from opsloop.routing import route
from opsloop.types import SYSTEM_PREFIX, Kind, Severity, State
from opsloop.workitems import WorkItems

Signal = tuple[str, AlertmanagerWebhook | V2Event]  # (integration name, payload)
__all__ = ["HeartbeatCheckIns", "Intake", "Outcome", "Signal"]


class HeartbeatCheckIns(Protocol):
    """Heartbeats that an always-firing alert checks in (`heartbeats.NAME.alertname`)."""

    def alert_check_in(self, session: Session, alertname: str, *, actor: str, now: datetime) -> bool: ...


_LABEL_SEVERITY = {
    "critical": Severity.SEV1, "page": Severity.SEV1, "sev1": Severity.SEV1,
    "error": Severity.SEV2, "major": Severity.SEV2, "high": Severity.SEV2, "sev2": Severity.SEV2,
    "warning": Severity.SEV3, "minor": Severity.SEV3, "medium": Severity.SEV3, "sev3": Severity.SEV3,
    "info": Severity.SEV4, "low": Severity.SEV4, "none": Severity.SEV4, "sev4": Severity.SEV4,
}
_OPEN = (State.TRIGGERED.value, State.ACKNOWLEDGED.value, State.MITIGATED.value)


@dataclass(eq=False)
class Intake:
    db: Database
    policy: Policy
    clock: Clock
    items: WorkItems
    bus: Bus
    _: KW_ONLY
    flap_window: timedelta = timedelta(minutes=10)  # resolved, then firing again within it: a flap
    flap_threshold: int = 3  # flaps after which the thread stops hearing of each
    debounce: timedelta = timedelta(seconds=3)  # at most one card edit per incident this often
    max_retries: int = 5  # a batch that lost a race is retried whole this many times
    heartbeats: HeartbeatCheckIns | None = None
    events_v2: EventsV2 = field(init=False)

    def __post_init__(self) -> None:
        self.events_v2 = EventsV2(self, self.policy)

    # ------------------------------------------------------------------ entry points

    def ingest(self, signals: Sequence[Signal]) -> list[Outcome]:
        """Store a batch of signals in one transaction (retried whole on a lost race)."""
        return self.ingest_taken(lambda _session: signals)

    def ingest_taken(self, take: Callable[[Session], Sequence[Signal]]) -> list[Outcome]:
        """Like `ingest`, for the signals `take` reads in the transaction (after the chain's head is
        locked), e.g. the oldest entries of the inbox, which it deletes there: processed exactly once."""
        generated: dict[int, str] = {}  # an Events v2 key made up once: the same on every retry
        for attempt in range(self.max_retries):
            try:
                with self.db.transaction() as session:
                    audit.lock_chain(session)  # the lock order every writer keeps
                    signals = take(session)
                    for i, (_, payload) in enumerate(signals):
                        if isinstance(payload, V2Event) and payload.dedup_key is None:
                            generated.setdefault(i, uuid.uuid4().hex)
                    batch = Batch(session, self.clock.now())
                    batch.read_ahead(*_named(signals, generated))
                    outcomes = [
                        self._alertmanager(batch, name, payload)
                        if isinstance(payload, AlertmanagerWebhook)
                        else self.events_v2.handle(batch, name, payload, generated.get(i))
                        for i, (name, payload) in enumerate(signals)
                    ]
                    self._settle(batch)
                return outcomes
            except (IntegrityError, OperationalError) as error:
                if attempt == self.max_retries - 1 or not retryable(error):
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

    def context(self, session: Session, item: WorkItem) -> AlertContext | None:
        """What the alerts of an alert-born incident said (None: it has no alerts)."""
        return alert_context(session, item)

    def release(self, session: Session, window: WorkItem) -> list[str]:
        """A maintenance window ended: the alerts it held that still fire open incidents through routing
        (one per Alertmanager group, or the group's open incident), which page as usual; the rest are
        history. Returns the incidents opened. In the caller's transaction (it holds the chain's head)."""
        groups: dict[tuple[str, str], list[Alert]] = {}
        for row in session.exec(select(Alert).where(Alert.work_item_id == window.id, col(Alert.active))
                                .order_by(col(Alert.id))):
            if row.status != "firing":
                row.active = False
                session.add(row)
                continue
            group = row.context.get(HELD, {}).get("group")
            groups.setdefault((row.integration, group["hash"] if group else f"key:{row.key}"), []).append(row)
        opened: list[str] = []
        for (integration, group_hash), rows in groups.items():
            held = rows[0].context.get(HELD, {})
            group = held.get("group")
            found = session.exec(select(AlertGroup).where(
                AlertGroup.integration == integration, AlertGroup.group_hash == group_hash,
                col(AlertGroup.active))).first() if group else None
            if found is not None:
                item_id = found.work_item_id
            else:
                item = open_routed(session, self.policy, self.items, actor=f"{SYSTEM_PREFIX}{integration}",
                                   title=held.get("title") or rows[0].summary,
                                   labels=held.get("labels") or rows[0].labels,
                                   severity=EVENTS_V2_SEVERITY.get(held.get("severity") or ""))
                assert item.id is not None
                item_id = item.id
                opened.append(item.ref)
                if group:
                    session.add(AlertGroup(integration=integration, group_hash=group_hash,
                                           group_key=group["key"], work_item_id=item_id,
                                           created_at=self.clock.now(), context=group.get("context", {})))
            for row in rows:
                row.work_item_id = item_id
                row.context = {k: v for k, v in row.context.items() if k != HELD}
                session.add(row)
        return opened

    # ------------------------------------------------------------------ Alertmanager

    def _alertmanager(self, batch: Batch, name: str, hook: AlertmanagerWebhook) -> Outcome:
        outcome = Outcome()
        s, now = batch.session, batch.now
        group_hash = _group_hash(hook)
        group = batch.group(name, group_hash)
        if group is not None:
            _remember_group(group, hook)
        known = batch.find(name, [a.key() for a in hook.alerts])
        for am in hook.alerts:
            key = am.key()
            row = known.get(key)
            if row is not None:
                self.update(batch, row, firing=am.status == "firing", summary=_summary(am, hook))
                fresh = keep_held(row.context, _am_context(am))
                if row.context != fresh:
                    row.context = fresh
                outcome.touched.append(self.item(batch, row.work_item_id).ref)
                continue
            if am.status == "resolved":
                continue  # resolved before we ever saw it fire: nothing to do
            if self.heartbeats is not None and self.heartbeats.alert_check_in(
                    s, am.labels.get("alertname", ""), actor=f"{SYSTEM_PREFIX}{name}", now=now):
                continue  # a Watchdog-style alert: it checks its heartbeat in, it is no incident
            labels = {**hook.commonLabels, **am.labels}
            window = batch.holding(labels)
            if window is not None:  # planned work: recorded on the window, no incident, no page
                self.item(batch, window.work_item_id)
                new = NewAlert(integration=name, key=key, work_item_id=window.work_item_id,
                               summary=_summary(am, hook), labels=am.labels, first_seen_at=now,
                               last_seen_at=now, context=_am_context(am))
                hold(batch, window, new, outcome, title=_title(am, hook), labels=labels, group={
                    "hash": group_hash, "key": hook.groupKey, "context": _group_context(hook)})
                known[key] = new
                continue
            if group is None:
                item = self.open(batch, name, _title(am, hook), labels)
                outcome.created.append(item.ref)
                assert item.id is not None
                group = AlertGroup(integration=name, group_hash=group_hash, group_key=hook.groupKey,
                                   work_item_id=item.id, created_at=now)
                _remember_group(group, hook)
                batch.add_group(group)
            new = NewAlert(integration=name, key=key, work_item_id=group.work_item_id,
                           summary=_summary(am, hook), labels=am.labels, first_seen_at=now,
                           last_seen_at=now, context=_am_context(am))
            batch.add(new)
            known[key] = new
            self.item(batch, group.work_item_id)
        return outcome

    # ------------------------------------------------------------------ shared

    def open(self, batch: Batch, integration: str, title: str, labels: dict[str, str],
             severity: Severity | None = None) -> WorkItem:
        """An incident for a new alert, routed by its labels, opened by `system:<integration>`."""
        item = open_routed(batch.session, self.policy, self.items, actor=f"{SYSTEM_PREFIX}{integration}",
                           title=title, labels=labels, severity=severity)
        assert item.id is not None
        batch.touched[item.id] = item
        return item

    def item(self, batch: Batch, item_id: int) -> WorkItem:
        """A work item the batch touches, row-locked once."""
        item = batch.touched.get(item_id)
        if item is None:
            item = batch.locked.get(item_id) or batch.session.exec(
                select(WorkItem).where(WorkItem.id == item_id).with_for_update()).one()
            batch.touched[item_id] = item
        return item

    def update(self, batch: Batch, row: AlertRow, *, firing: bool, summary: str) -> None:
        """A known alert was sent again: firing (maybe a flap) or resolved."""
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
        self.item(batch, row.work_item_id)

    def _settle(self, batch: Batch) -> None:
        """Move each touched incident where its alerts say, and refresh its card (debounced)."""
        s = batch.session
        batch.insert_new()
        s.flush()
        counted = [i for i, item in batch.touched.items() if item.kind != Kind.MAINTENANCE.value
                   and item.state in _OPEN]
        firing_of = dict(s.exec(select(Alert.work_item_id, func.count()).where(
            col(Alert.work_item_id).in_(counted), Alert.status == "firing")
            .group_by(col(Alert.work_item_id))).all()) if counted else {}
        for item_id, item in batch.touched.items():
            if item.kind == Kind.MAINTENANCE.value:  # a window holding alerts: its card counts them
                self.bus.publish(s, AlertsUpdated(at=batch.now, item=item, debounce=self.debounce))
                continue
            if item.state not in _OPEN:
                continue
            firing = firing_of.get(item_id, 0)
            actor = f"{SYSTEM_PREFIX}{item.created_by.removeprefix(SYSTEM_PREFIX)}"
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


def open_routed(session: Session, policy: Policy, items: WorkItems, *, actor: str, title: str,
                labels: dict[str, str], severity: Severity | None = None) -> WorkItem:
    """An incident opened by a machine (an alert, a missed heartbeat): the routing tree on its labels
    picks severity (else the `severity` label, else `severity`, else sev3) and channel; a `tenant`
    label names the accounts it affects (ids the catalog does not know are left out)."""
    decision = route(policy, labels)
    chosen = decision.severity or severity or _LABEL_SEVERITY.get(labels.get("severity", "").lower(),
                                                                  Severity.SEV3)
    return items.create_in(session, Kind.INCIDENT, actor=actor, title=title[:300], severity=chosen,
                           tenants=_known_tenants(session, labels),
                           labels={k: str(v) for k, v in labels.items()}, owner=None,
                           channel=decision.channel)


def _named(signals: Sequence[Signal], generated: dict[int, str]) -> tuple[list[tuple[str, str]],
                                                                           list[tuple[str, str]]]:
    """The (integration, alert key) and (integration, group hash) pairs a batch of signals names."""
    keys: list[tuple[str, str]] = []
    groups: list[tuple[str, str]] = []
    for i, (name, payload) in enumerate(signals):
        if isinstance(payload, AlertmanagerWebhook):
            groups.append((name, _group_hash(payload)))
            keys += [(name, a.key()) for a in payload.alerts]
        elif payload.dedup_key is not None or i in generated:
            keys.append((name, payload.dedup_key or generated[i]))
    return keys, groups


def _group_hash(hook: AlertmanagerWebhook) -> str:
    return hashlib.sha256(hook.groupKey.encode()).hexdigest()


def _known_tenants(session: Session, labels: dict[str, str]) -> list[str]:
    wanted = [t for t in labels.get("tenant", "").replace(",", " ").split() if t]
    if not wanted:
        return []
    return list(session.exec(select(Account.id).where(col(Account.id).in_(wanted))))


def _group_context(hook: AlertmanagerWebhook) -> dict[str, Any]:
    return {"group_labels": hook.groupLabels, "common_labels": hook.commonLabels,
            "common_annotations": hook.commonAnnotations, "external_url": hook.externalURL}


def _remember_group(group: AlertGroup, hook: AlertmanagerWebhook) -> None:
    """The group's newest common labels and annotations (compared first: most webhooks repeat them)."""
    context = _group_context(hook)
    if group.context != context:
        group.context = context


def _am_context(alert: AmAlert) -> dict[str, object]:
    return {"annotations": alert.annotations, "generator_url": alert.generatorURL}


def _title(alert: AmAlert, hook: AlertmanagerWebhook) -> str:
    """The group's own words: its common summary before the first alert's (one pod's name)."""
    name = alert.labels.get("alertname") or hook.commonLabels.get("alertname") or "Alert"
    summary = _words(hook.commonAnnotations) or _words(alert.annotations)
    return f"{name}: {summary}" if summary and summary != name else name


def _summary(alert: AmAlert, hook: AlertmanagerWebhook) -> str:
    return _words(alert.annotations) or _words(hook.commonAnnotations)


def _words(annotations: dict[str, str]) -> str:
    for key in ("summary", "description", "message"):
        if annotations.get(key):
            return annotations[key]
    return ""
