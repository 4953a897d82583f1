"""Retention: old data goes daily, once across replicas, leaving what other rows still name."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from opsloop.compliance.models import ComplianceRun
from opsloop.compliance.retention import EXPIRED, RetentionJob
from opsloop.core import Core
from opsloop.db import Database
from opsloop.errors import ConfigError
from opsloop.health.models import HealthSignal
from opsloop.intake.inbox import ALERTMANAGER, Accepted, Inbox
from opsloop.intake.models import InboxEntry
from opsloop.models import AuditEvent, OutboxAttempt, OutboxMessage, TimelineEvent
from opsloop.outbox import PENDING, Delivered, Dispatcher
from opsloop.policy_loader import load_policy
from tests.core.compliance.chain import verdict
from tests.support import ROOT, FakeClock, at_once

RESPONDER = "U0RESP1"


class Deliver:
    def send(self, message: OutboxMessage, parent: OutboxMessage | None) -> Delivered:
        return Delivered(external_id="1", external_target=message.target)


def deliver_all(services: Core) -> None:
    Dispatcher(services.db, {t: Deliver() for t in ("chat", "email", "webhook")}, services.clock,
               prepare=services.cards.prepare_outbound).drain()


def table(services: Core, model: type) -> list:  # type: ignore[type-arg]
    with services.db.transaction() as session:
        return list(session.exec(select(model)))


def test_the_sample_policy_keeps_outbox_90d_signals_400d_timeline_text_730d(services: Core) -> None:
    rules = services.policy.retention
    assert [r.days if r else None for r in (rules.outbox, rules.signals, rules.timeline_text)] == [90, 400, 730]


def test_old_messages_signals_and_timeline_words_go_and_named_rows_stay(services: Core, clock: FakeClock) -> None:
    services.commands.handle("/incident", 'declare "Checkout down" sev1 tenant:acme', actor=RESPONDER)
    deliver_all(services)
    with services.db.transaction() as session:
        session.add(HealthSignal(tenant_id="acme", kind="nps", value=10, at=clock.now(), received_at=clock.now(),
                                 source="t"))
    clock.advance(days=91)
    services.commands.handle("/incident", "acknowledge INC-1", actor=RESPONDER)  # a fresh edit of the old card
    before = {m.key: m for m in table(services, OutboxMessage)}
    job = RetentionJob(services.db, services.policy, clock)

    outcome = job.run_due()

    after = {m.key: m for m in table(services, OutboxMessage)}
    card = "card:INC-1"
    assert card in after and after[card].payload == {} and after[card].external_id == "1"  # still named by edits
    fresh = [k for k, m in before.items() if m.created_at == clock.now()]
    assert fresh and all(k in after and after[k].payload for k in fresh)  # younger than 90 days: untouched
    old_unnamed = [k for k, m in before.items() if m.created_at < clock.now() and k != card
                   and not any(o.thread_key == k or o.update_key == k for o in before.values())
                   and not k.startswith("loop:")]
    assert old_unnamed and not any(k in after for k in old_unnamed)
    assert outcome is not None and outcome["outbox"]["deleted"] == len(before) - len(after)
    assert not any(a.message_id not in {m.id for m in after.values()} for a in table(services, OutboxAttempt))
    assert len(table(services, HealthSignal)) == 1  # 91 days is within 400
    assert all(t.text != EXPIRED for t in table(services, TimelineEvent))

    clock.advance(days=640)  # 731 days after the incident
    outcome = job.run_due()
    assert outcome is not None and outcome["signals"]["deleted"] == 1 and table(services, HealthSignal) == []
    lines = table(services, TimelineEvent)
    assert outcome["timeline_text"]["expired"] == 1 == sum(t.text == EXPIRED for t in lines)
    assert [(t.action, t.text == EXPIRED) for t in sorted(lines, key=lambda t: t.id or 0)] == [
        ("created", True), ("acknowledge", False)]  # the lines stay; only the old one lost its words
    events = [e for e in table(services, AuditEvent) if e.action == "retention.applied"]
    assert [e.subject for e in events] == ["retention:2027-02-22", "retention:2028-11-23"]
    assert verdict(services.db).ok


def test_retention_runs_once_a_day_and_pending_messages_are_never_removed(services: Core,
                                                                         clock: FakeClock) -> None:
    services.commands.handle("/incident", 'declare "Checkout down" sev1 tenant:acme', actor=RESPONDER)
    pending = [m.key for m in table(services, OutboxMessage) if m.status == PENDING]
    clock.advance(days=365)
    job = RetentionJob(services.db, services.policy, clock)
    assert job.run_due() is not None
    assert job.run_due() is None  # the day is claimed
    assert sorted(m.key for m in table(services, OutboxMessage)) == sorted(pending)
    clock.advance(days=1)
    assert job.run_due() is not None
    assert [r.period for r in table(services, ComplianceRun)] == ["2027-11-23", "2027-11-24"]


def test_without_retention_nothing_is_claimed(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    path = tmp_path / "opsloop.yml"
    path.write_text("channels: {ops: C0OPS}\n")
    job = RetentionJob(db, load_policy(path), clock)
    assert not job.configured and job.run_due() is None
    with db.transaction() as session:
        assert session.exec(select(ComplianceRun)).all() == []


def test_a_period_under_a_day_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "opsloop.yml"
    path.write_text("channels: {ops: C0OPS}\nretention: {outbox: 2h}\n")
    with pytest.raises(ConfigError, match=r"retention.outbox: .*write 1d or more"):
        load_policy(path)


@pytest.mark.postgres
def test_two_replicas_apply_retention_once_a_day(postgres_url: str) -> None:
    clock = FakeClock()
    policy = load_policy(ROOT / "opsloop.yml")
    databases = [Database.from_url(postgres_url) for _ in range(2)]
    replicas = [RetentionJob(db, policy, clock) for db in databases]
    try:
        for day in range(3):
            results = [outcome is not None for outcome in at_once([job.run_due for job in replicas])]
            assert sorted(results) == [False, True], f"day {day}: {results}"
            clock.advance(days=1)
        with databases[0].transaction() as session:
            applied = session.exec(select(AuditEvent).where(col(AuditEvent.action) == "retention.applied")).all()
        assert len(applied) == 3
    finally:
        for db in databases:
            db.dispose()


def test_webhooks_the_intake_set_aside_go_after_the_outbox_period(services: Core, clock: FakeClock) -> None:
    inbox = Inbox(services.db, services.intake, services.clock)
    inbox.put([Accepted("prometheus", ALERTMANAGER, json.dumps({"version": "4", "alerts": "not a list"}))])
    assert inbox.process() == 1  # set aside, with its error
    clock.advance(days=89)
    inbox.put([Accepted("prometheus", ALERTMANAGER, json.dumps({"alerts": None}))])
    assert inbox.process() == 1
    clock.advance(days=2)  # the first is 91 days old, the second 2
    outcome = RetentionJob(services.db, services.policy, clock).run_due()
    assert outcome is not None and outcome["outbox"]["inbox_set_aside_deleted"] == 1
    [kept] = table(services, InboxEntry)
    assert kept.failed_at is not None and clock.now() - kept.failed_at < timedelta(days=3)
