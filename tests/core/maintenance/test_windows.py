"""Maintenance windows: alerts they match open nothing and page no one; what still fires at the end
pages once; clocks pause and resume; heartbeats wait; who may do what."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import col, select

from opsloop.audit import verify
from opsloop.core import Core
from opsloop.errors import IllegalTransition, InvalidInput, PermissionDenied
from opsloop.intake.models import Alert
from opsloop.maintenance.models import MaintenanceWindow
from opsloop.models import AuditEvent, OutboxMessage, WorkItem
from opsloop.sla.models import SlaClock
from opsloop.table import Sources, assemble
from opsloop.types import Severity
from tests.core.test_intake import am, v2
from tests.support import ROOT, FakeClock

ADMIN, COMMANDER, RESPONDER = "U0ADMIN", "U0RESP1", "U0RESP2"


def incidents(services: Core) -> list[WorkItem]:
    with services.db.transaction() as s:
        return list(s.exec(select(WorkItem).where(WorkItem.kind == "incident").order_by(col(WorkItem.id))))


def pages(services: Core) -> list[OutboxMessage]:
    """Escalation pages: a DM per person per level."""
    with services.db.transaction() as s:
        return list(s.exec(select(OutboxMessage).where(col(OutboxMessage.key).startswith("page:"))))


def held(services: Core, ref: str) -> list[Alert]:
    with services.db.transaction() as s:
        item = s.exec(select(WorkItem).where(WorkItem.ref == ref)).one()
        return list(s.exec(select(Alert).where(Alert.work_item_id == item.id).order_by(col(Alert.id))))


def item(services: Core, ref: str) -> WorkItem:
    return services.workitems.get(ref).item


def sweep(services: Core) -> None:
    """Fire what is due (twice: a timer's handler may queue a timer due now, e.g. a first page)."""
    services.sweeper.sweep()
    services.sweeper.sweep()


def schedule(services: Core, *matchers: str, actor: str = COMMANDER, starts: str | None = "now",
             until: str = "+1h", tenants: tuple[str, ...] = ()) -> WorkItem:
    return services.maintenance.schedule(actor=actor, what="Checkout DB upgrade", matchers=list(matchers),
                                         starts=starts, until=until, tenants=tenants).item


def test_alerts_during_a_window_page_no_one_and_one_still_firing_at_its_end_pages_once(
        services: Core, clock: FakeClock) -> None:
    window = schedule(services, "service=checkout", "alertname!~Watchdog|Heartbeat.*", tenants=("acme",))
    assert item(services, window.ref).state == "active"
    clock.advance(minutes=5)
    outcomes = services.intake.ingest([
        ("prometheus", am("CheckoutDown", ("c1", "firing"), ("c2", "firing"), service="checkout", env="prod",
                          severity="critical", tenant="acme")),
        ("monitors", v2("trigger", "pd-1", custom_details={"service": "checkout"}, severity="critical")),
        ("monitors", v2("trigger", "pd-2", custom_details={"service": "search"})),  # not covered
    ])
    sweep(services)
    assert [o.touched for o in outcomes[:2]] == [[window.ref, window.ref], [window.ref]]
    [control] = incidents(services)  # only the alert the window does not cover opened one
    assert control.labels["service"] == "search"
    assert outcomes[2].created == [control.ref]
    control_pages = len(pages(services))
    assert control_pages > 0  # an ordinary alert pages, the held ones do not
    services.workitems.act(actor=COMMANDER, ref=control.ref, action="acknowledge")  # its chain stops
    assert sorted(a.key for a in held(services, window.ref)) == ["c1", "c2", "pd-1"]

    clock.advance(minutes=5)  # Alertmanager repeats; one alert resolves during the window
    services.intake.ingest([("prometheus", am("CheckoutDown", ("c1", "resolved"), ("c2", "firing"),
                                              service="checkout", env="prod", severity="critical",
                                              tenant="acme"))])
    sweep(services)
    assert len(incidents(services)) == 1 and len(pages(services)) == control_pages
    services.intake.ingest([("monitors", v2("resolve", "pd-1"))])
    assert [(a.key, a.status) for a in held(services, window.ref)] == [
        ("c1", "resolved"), ("c2", "firing"), ("pd-1", "resolved")]

    clock.advance(hours=1)  # the window's end: c2 still fires
    sweep(services)
    assert item(services, window.ref).state == "ended"
    still, opened = incidents(services)
    assert still.ref == control.ref
    assert opened.title == "CheckoutDown: CheckoutDown is unhappy"
    assert (opened.created_by, opened.severity, services.workitems.get(opened.ref).tenants) == (
        "system:prometheus", "sev1", ["acme"])
    assert {"service": "checkout", "env": "prod", "alertname": "CheckoutDown"}.items() <= opened.labels.items()
    new_pages = [p for p in pages(services) if p.id not in {q.id for q in pages(services)[:control_pages]}]
    assert len(new_pages) == 1  # level one of the chain: the one person on call, once
    with services.db.transaction() as s:
        rows = {a.key: a for a in s.exec(select(Alert).where(col(Alert.key).in_(["c1", "c2"])))}
    assert rows["c2"].work_item_id == opened.id and rows["c2"].active and "held" not in rows["c2"].context
    assert not rows["c1"].active  # resolved during the window: history

    sweep(services)  # nothing fires twice
    services.intake.ingest([("prometheus", am("CheckoutDown", ("c2", "firing"), service="checkout",
                                              env="prod", severity="critical", tenant="acme"))])
    sweep(services)
    assert len(incidents(services)) == 2 and len(pages(services)) == control_pages + 1
    with services.db.transaction() as s:
        actions = [e.action for e in s.exec(select(AuditEvent).where(AuditEvent.subject == window.ref)
                                            .order_by(col(AuditEvent.seq)))]
        assert verify(s).ok
    assert [a for a in actions if a.startswith("maintenance.")] == [
        "maintenance.created", "maintenance.scheduled", "maintenance.start", "maintenance.alert_held",
        "maintenance.alert_held", "maintenance.alert_held", "maintenance.end", "maintenance.ended"]


def test_events_v2_held_then_resolved_opens_nothing_at_the_end(services: Core, clock: FakeClock) -> None:
    window = schedule(services, "source=db-1")
    services.intake.ingest([("monitors", v2("trigger", "k1"))])
    services.intake.ingest([("monitors", v2("trigger", "k1"))])  # deduplicated on the window
    services.intake.ingest([("monitors", v2("resolve", "k1"))])
    assert [(a.key, a.status, a.seen) for a in held(services, window.ref)] == [("k1", "resolved", 3)]
    clock.advance(hours=2)
    sweep(services)
    assert item(services, window.ref).state == "ended" and incidents(services) == []
    services.intake.ingest([("monitors", v2("trigger", "k1"))])  # after the window: pages as usual
    assert len(incidents(services)) == 1


def test_a_window_ended_early_releases_what_still_fires(services: Core, clock: FakeClock) -> None:
    window = schedule(services, "source=db-1", until="+4h")
    services.intake.ingest([("monitors", v2("trigger", "k1", severity="critical"))])
    with pytest.raises(PermissionDenied, match="having scheduled it or the role commander or admin"):
        services.maintenance.end(actor=RESPONDER, ref=window.ref)
    assert incidents(services) == []
    services.maintenance.end(actor=COMMANDER, ref=window.ref, note="done early")
    [opened] = incidents(services)
    assert (opened.severity, opened.title) == ("sev1", "Disk full on db-1")
    with services.db.transaction() as s:
        row = s.get(MaintenanceWindow, item(services, window.ref).id)
        assert row is not None and row.ended_at == clock.now() and row.ends_at > clock.now()
    with pytest.raises(IllegalTransition, match="ended; it cannot be ended"):
        services.maintenance.end(actor=COMMANDER, ref=window.ref)
    clock.advance(hours=5)
    sweep(services)  # its end timer finds it ended: nothing more
    assert len(incidents(services)) == 1 and item(services, window.ref).state == "ended"


def test_a_window_later_today_holds_nothing_until_it_starts(services: Core, clock: FakeClock) -> None:
    window = schedule(services, "source=db-1", starts="+1h", until="+30m")
    assert item(services, window.ref).state == "scheduled"
    services.intake.ingest([("monitors", v2("trigger", "before"))])
    assert len(incidents(services)) == 1
    clock.advance(hours=1)  # held from its start, even before the start timer is swept
    services.intake.ingest([("monitors", v2("trigger", "during"))])
    assert len(incidents(services)) == 1 and [a.key for a in held(services, window.ref)] == ["during"]
    sweep(services)
    assert item(services, window.ref).state == "active"
    clock.advance(minutes=31)
    sweep(services)
    assert item(services, window.ref).state == "ended" and len(incidents(services)) == 2


def test_clocks_of_matching_items_pause_for_the_window_and_resume_after(
        services: Core, clock: FakeClock) -> None:
    before = services.workitems.declare(actor=COMMANDER, title="Checkout slow", labels={"service": "checkout"},
                                        severity=Severity.SEV2)
    other = services.workitems.declare(actor=COMMANDER, title="Search slow", labels={"service": "search"},
                                       severity=Severity.SEV2)
    services.workitems.act(actor=COMMANDER, ref=before.ref, action="acknowledge")
    window = schedule(services, "service=checkout", until="+2h")
    during = services.workitems.declare(actor=COMMANDER, title="Checkout errors",
                                        labels={"service": "checkout"}, severity=Severity.SEV2)

    def states(ref: str) -> set[str]:
        with services.db.transaction() as s:
            found = s.exec(select(WorkItem).where(WorkItem.ref == ref)).one()
            return {c.state for c in services.sla.clocks(s, found)}

    assert states(before.ref) == {"met", "paused"}  # acknowledged: its response clock was met
    assert states(during.ref) == {"met", "paused"}  # declared by a person: response met at once
    assert "running" in states(other.ref)
    clock.advance(hours=2)
    sweep(services)
    assert "running" in states(before.ref) and "running" in states(during.ref)
    with services.db.transaction() as s:
        row = s.get(MaintenanceWindow, item(services, window.ref).id)
        assert row is not None and row.paused == [before.ref, during.ref]
        clocks = s.exec(select(SlaClock).where(SlaClock.work_item_id == during.id)).all()
    assert all(c.paused_seconds == 7200 for c in clocks if c.target != "update" and c.state == "running")


def test_permissions_and_approval(sources: Sources, tmp_path: Path, clock: FakeClock) -> None:
    policy = yaml.safe_load((ROOT / "opsloop.yml").read_text())
    policy["accounts"] = str(ROOT / "accounts.yml")
    policy["maintenance"] = {"require_approval": True}
    path = tmp_path / "opsloop.yml"
    path.write_text(yaml.safe_dump(policy))
    services = assemble(replace(sources, config=path), clock=clock)
    try:
        with pytest.raises(PermissionDenied, match="you may not schedule maintenance windows: that needs the "
                                                   "role commander or admin"):
            schedule(services, "service=checkout", actor=RESPONDER)
        window = schedule(services, "source=db-1")
        assert item(services, window.ref).state == "requested"
        services.intake.ingest([("monitors", v2("trigger", "k1"))])
        assert len(incidents(services)) == 1  # not approved yet: it holds nothing
        with pytest.raises(PermissionDenied, match="you scheduled MNT-1, so you cannot approve it"):
            services.maintenance.approve(actor=COMMANDER, ref=window.ref)
        with pytest.raises(PermissionDenied, match="that needs the role commander or admin"):
            services.maintenance.approve(actor=RESPONDER, ref=window.ref)
        services.maintenance.approve(actor=ADMIN, ref=window.ref)
        assert item(services, window.ref).state == "active"
        services.intake.ingest([("monitors", v2("trigger", "k2"))])
        assert len(incidents(services)) == 1 and [a.key for a in held(services, window.ref)] == ["k2"]
        with services.db.transaction() as s:
            denied = s.exec(select(AuditEvent).where(AuditEvent.action == "permission.denied")).all()
        assert [d.after["attempted"] for d in denied if d.after] == [
            "maintenance.schedule", "maintenance.approve", "maintenance.approve"]
    finally:
        services.db.dispose()


@pytest.mark.parametrize(("starts", "until", "reason"), [
    ("now", "2026-11-23 09:30", "end before it starts"),
    ("2026-11-22 09:00", "+1h", "start in the past"),
    ("now", "+8d", "longer than maintenance.max_length"),
    ("now", "soon", "cannot read the time 'soon'"),
])
def test_bad_times_are_refused_and_change_nothing(services: Core, starts: str, until: str,
                                                  reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        schedule(services, "service=x", starts=starts, until=until)
    with services.db.transaction() as s:
        assert list(s.exec(select(WorkItem))) == []


HEARTBEATS: dict[str, Any] = {"queue-worker": {"every": "5m", "grace": "1m", "labels": {"service": "queue"}}}


@pytest.fixture
def with_heartbeats(sources: Sources, tmp_path: Path, clock: FakeClock) -> Iterator[Core]:
    policy = yaml.safe_load((ROOT / "opsloop.yml").read_text())
    policy["accounts"] = str(ROOT / "accounts.yml")
    policy["heartbeats"] = HEARTBEATS
    path = tmp_path / "opsloop.yml"
    path.write_text(yaml.safe_dump(policy))
    services = assemble(replace(sources, config=path), clock=clock)
    yield services
    services.db.dispose()


def test_a_heartbeat_missed_during_a_matching_window_opens_nothing(
        with_heartbeats: Core, clock: FakeClock) -> None:
    services = with_heartbeats
    services.heartbeats.arm()
    schedule(services, "service=queue", until="+30m")
    clock.advance(minutes=7)  # missed (6 minutes) while the window holds
    sweep(services)
    assert incidents(services) == []
    clock.advance(minutes=28)  # the window ended at 09:30; the deadline moved to 09:30 + 5m + 1m
    sweep(services)
    assert incidents(services) == []
    clock.advance(minutes=2)
    sweep(services)
    [missed] = incidents(services)
    assert missed.labels["heartbeat"] == "queue-worker"



def test_the_command_reads_matchers_times_and_tenants(services: Core) -> None:
    reply = services.commands.handle(
        "/maintenance", 'schedule "DB upgrade" service=db env=~"prod|staging" from now until +2h tenant:acme',
        actor=COMMANDER)
    assert reply.text.startswith("Scheduled MNT-1: DB upgrade — from 2026-11-23 10:00 CET until "
                                 '2026-11-23 12:00 CET, covering service="db" env=~"prod|staging"; now active.')
    view = services.workitems.get("MNT-1")
    with services.db.transaction() as s:
        row = s.get(MaintenanceWindow, view.item.id)
        assert row is not None and row.matchers == [["service", "=", "db"], ["env", "=~", "prod|staging"]]
    assert view.tenants == ["acme"]
    listed = services.commands.handle("/maintenance", "list", actor=RESPONDER).text
    assert "MNT-1 DB upgrade — active · 2026-11-23 10:00 CET → 2026-11-23 12:00 CET" in listed
    with pytest.raises(PermissionDenied, match="you may not end maintenance windows: that needs having "
                                               "scheduled it or the role commander or admin"):
        services.commands.handle("/maintenance", "end MNT-1", actor=RESPONDER)
    assert services.commands.press("maintenance.end", "MNT-1", actor=COMMANDER).text == "MNT-1 ended — now ended"
    assert services.commands.handle("/maintenance", "list", actor=RESPONDER).text == "No open maintenance windows."
