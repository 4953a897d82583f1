"""Alerts become incidents: deduplicated, grouped, folded in a storm, never duplicated."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.intake.models import Alert
from opsloop.intake.payloads import (
    AlertmanagerWebhook,
    PayloadError,
    V2Event,
    parse,
    parse_v2,
)
from opsloop.models import OutboxMessage, WorkItem
from opsloop.table import Sources, assemble
from tests.support import ROOT, FakeClock


def am(group: str, *alerts: tuple[str, str], **labels: str) -> AlertmanagerWebhook:
    """A webhook of group `group` with alerts (fingerprint, status)."""
    body = {
        "version": "4", "groupKey": f'{{}}:{{alertname="{group}"}}', "status": "firing",
        "receiver": "opsloop", "groupLabels": {"alertname": group},
        "commonLabels": {"alertname": group, **labels},
        "commonAnnotations": {"summary": f"{group} is unhappy"},
        "alerts": [
            {"status": status, "labels": {"alertname": group, "instance": fp, **labels},
             "annotations": {}, "startsAt": "2026-11-23T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
             "fingerprint": fp, "generatorURL": "http://prometheus/graph", "someNewField": 1}
            for fp, status in alerts
        ],
    }
    return parse(AlertmanagerWebhook, body)


def v2(action: str, key: str | None = None, **payload: Any) -> V2Event:
    body: dict[str, Any] = {"routing_key": "rk", "event_action": action}
    if key:
        body["dedup_key"] = key
    if action == "trigger":
        body["payload"] = {"summary": "Disk full on db-1", "source": "db-1", "severity": "error",
                           **payload}
    return parse_v2(body)


def items(services: Core) -> list[WorkItem]:
    with services.db.transaction() as s:
        return list(s.exec(select(WorkItem).order_by(col(WorkItem.id))))


def posts(services: Core) -> list[OutboxMessage]:
    """New messages in channels (not edits, not thread lines, not email or webhooks)."""
    with services.db.transaction() as s:
        return list(s.exec(select(OutboxMessage).where(
            OutboxMessage.transport == "chat",
            col(OutboxMessage.update_key).is_(None), col(OutboxMessage.thread_key).is_(None))))


def cards(services: Core) -> list[OutboxMessage]:
    return [m for m in posts(services) if m.key.startswith("card:")]


def test_a_group_becomes_one_incident_and_resends_change_nothing(services: Core) -> None:
    hook = am("HighLatency", ("a1", "firing"), ("a2", "firing"), ("a3", "firing"), severity="warning")
    [outcome] = services.intake.ingest([("prometheus", hook)])
    assert outcome.created == ["INC-1"]
    for _ in range(3):  # Alertmanager re-sends every repeat_interval
        [again] = services.intake.ingest([("prometheus", hook)])
        assert again.created == [] and again.touched == ["INC-1"] * 3
    [inc] = items(services)
    assert (inc.title, inc.severity, inc.state) == ("HighLatency: HighLatency is unhappy", "sev3", "triggered")
    assert inc.created_by == "system:prometheus"
    with services.db.transaction() as s:
        assert [a.seen for a in s.exec(select(Alert).order_by(col(Alert.id)))] == [4, 4, 4]
    assert len(cards(services)) == 1
    assert len(posts(services)) == 2  # the card, and one start notice to the support channel
    assert ("Alerts", "3 firing · 0 resolved") in services.cards.of("INC-1").fields


def test_new_alerts_of_a_known_group_join_its_incident(services: Core) -> None:
    services.intake.ingest([("prometheus", am("DiskFull", ("d1", "firing")))])
    [outcome] = services.intake.ingest([("prometheus", am("DiskFull", ("d1", "firing"), ("d2", "firing")))])
    assert outcome.created == [] and outcome.touched == ["INC-1"]
    services.intake.ingest([("prometheus", am("OtherGroup", ("o1", "firing")))])
    assert [i.ref for i in items(services)] == ["INC-1", "INC-2"]


def test_all_resolved_means_mitigated_and_firing_again_reopens(services: Core, clock: FakeClock) -> None:
    services.intake.ingest([("prometheus", am("Api5xx", ("x1", "firing"), ("x2", "firing")))])
    services.intake.ingest([("prometheus", am("Api5xx", ("x1", "resolved"), ("x2", "firing")))])
    assert items(services)[0].state == "triggered"
    clock.advance(minutes=1)
    services.intake.ingest([("prometheus", am("Api5xx", ("x1", "resolved"), ("x2", "resolved")))])
    assert items(services)[0].state == "mitigated"
    clock.advance(minutes=1)
    services.intake.ingest([("prometheus", am("Api5xx", ("x2", "firing")))])
    inc = items(services)[0]
    assert inc.state == "triggered" and inc.mitigated_at is None
    assert [e.action for e in services.workitems.get("INC-1").timeline] == ["created", "mitigate", "reopen"]


def test_flapping_is_damped(services: Core, clock: FakeClock) -> None:
    services.intake.ingest([("prometheus", am("Flappy", ("f1", "firing")))])
    for _ in range(5):
        clock.advance(seconds=30)
        services.intake.ingest([("prometheus", am("Flappy", ("f1", "resolved")))])
        clock.advance(seconds=30)
        services.intake.ingest([("prometheus", am("Flappy", ("f1", "firing")))])
    assert len(items(services)) == 1
    inc = items(services)[0]
    assert inc.labels["flapping"] == "yes"
    with services.db.transaction() as s:
        thread = s.exec(select(OutboxMessage).where(OutboxMessage.thread_key == "card:INC-1")).all()
    # the first flaps are told; past the threshold (3) the thread hears nothing more
    assert 0 < len(thread) < 10


def test_after_a_person_resolves_it_the_same_group_opens_a_new_incident(services: Core) -> None:
    services.intake.ingest([("prometheus", am("Api5xx", ("x1", "firing")))])
    services.workitems.act(actor="U0RESP1", ref="INC-1", action="resolve")
    [outcome] = services.intake.ingest([("prometheus", am("Api5xx", ("x1", "firing")))])
    assert outcome.created == ["INC-2"]


def test_events_v2_lifecycle_and_a_new_incident_after_resolve(services: Core) -> None:
    [first] = services.intake.ingest([("monitors", v2("trigger"))])
    assert first.created == ["INC-1"] and first.dedup_key and len(first.dedup_key) == 32
    key = first.dedup_key
    [again] = services.intake.ingest([("monitors", v2("trigger", key))])
    assert again.created == [] and again.dedup_key == key
    services.intake.ingest([("monitors", v2("acknowledge", key))])
    assert items(services)[0].state == "acknowledged"
    assert items(services)[0].owner is None  # a machine's acknowledgement makes nobody the owner
    services.intake.ingest([("monitors", v2("resolve", key))])
    assert items(services)[0].state == "resolved"  # PagerDuty's semantics: resolve resolves
    [reborn] = services.intake.ingest([("monitors", v2("trigger", key))])
    assert reborn.created == ["INC-2"]
    [nothing] = services.intake.ingest([("monitors", v2("resolve", "never-seen"))])
    assert nothing.touched == [] and nothing.created == []


def test_routing_and_labels_decide_severity_and_tenants(services: Core) -> None:
    services.intake.ingest([
        ("prometheus", am("TenantDataExposure", ("t1", "firing"), severity="info", tenant="acme")),
        ("prometheus", am("QueueBacklog", ("q1", "firing"), severity="critical", tenant="nobody")),
        ("monitors", v2("trigger", "k-1", severity="warning")),
    ])
    incs = items(services)
    assert [i.severity for i in incs] == ["sev1", "sev1", "sev3"]  # the route's sev1 beats severity=info
    assert services.workitems.get("INC-1").tenants == ["acme"]
    assert services.workitems.get("INC-2").tenants == []  # unknown tenant labels are not attached


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"status": "firing", "alerts": [{}]}, "groupKey: Field required"),
        ({"groupKey": "g", "status": "firing", "alerts": []}, "alerts: List should have at least 1 item"),
        ({"groupKey": "g", "status": "burning", "alerts": [{}]}, "status: Input should be 'firing' or 'resolved'"),
        ({"groupKey": "g", "status": "firing", "alerts": [{"status": "firing", "labels": "x",
                                                           "startsAt": "2026-11-23T09:00:00Z"}]},
         "alerts[0].labels: Input should be a valid dictionary"),
        ({"version": "3", "groupKey": "g", "status": "firing", "alerts": [{}]}, "version: webhook payload version"),
    ],
)
def test_bad_alertmanager_payloads_name_the_field(body: dict, expected: str) -> None:
    with pytest.raises(PayloadError) as error:
        parse(AlertmanagerWebhook, body)
    assert any(expected in e for e in error.value.errors), error.value.errors


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"routing_key": "rk", "event_action": "trigger"}, "payload: required for a trigger"),
        ({"routing_key": "rk", "event_action": "trigger", "payload": {"source": "s", "severity": "info"}},
         "payload.summary: Field required"),
        ({"routing_key": "rk", "event_action": "trigger",
          "payload": {"summary": "x", "source": "s", "severity": "fatal"}}, "payload.severity: Input should be"),
        ({"routing_key": "rk", "event_action": "resolve"}, "dedup_key: required for resolve"),
        ({"routing_key": "rk", "event_action": "explode"}, "event_action: Input should be"),
        ({"event_action": "trigger"}, "routing_key: Field required"),
    ],
)
def test_bad_events_name_the_field(body: dict, expected: str) -> None:
    with pytest.raises(PayloadError) as error:
        parse_v2(body)
    assert any(expected in e for e in error.value.errors), error.value.errors


def test_a_storm_folds_into_one_incident_and_one_message_per_group(services: Core) -> None:
    groups, per_group, rounds = 20, 25, 4
    for _ in range(rounds):
        batch = [("prometheus", am(f"G{g}", *[(f"g{g}-{i}", "firing") for i in range(per_group)]))
                 for g in range(groups)]
        services.intake.ingest(batch)
    assert len(items(services)) == groups
    assert len(cards(services)) == groups
    assert len(posts(services)) <= 3 * groups  # + one notice per audience channel, not per alert
    with services.db.transaction() as s:
        pending_edits = s.exec(select(OutboxMessage).where(
            col(OutboxMessage.update_key).is_not(None), OutboxMessage.status == "pending")).all()
        assert len(s.exec(select(Alert)).all()) == groups * per_group
    assert len(pending_edits) <= groups  # at most one waiting edit per incident


def test_a_stream_of_edits_cannot_postpone_the_debounced_edit(services: Core, clock: FakeClock) -> None:
    services.intake.ingest([("prometheus", am("G", ("a", "firing")))])
    start = clock.now()
    for i in range(20):
        clock.advance(seconds=1)
        services.intake.ingest([("prometheus", am("G", ("a", "firing"), (f"n{i}", "firing")))])
    with services.db.transaction() as s:
        pending = s.exec(select(OutboxMessage).where(
            OutboxMessage.update_key == "card:INC-1", OutboxMessage.status == "pending")).one()
    assert pending.next_attempt_at <= start + services.intake.debounce + services.intake.debounce


@pytest.mark.postgres
def test_concurrent_senders_never_open_two_incidents_for_one_group(
    postgres_url: str, clock: FakeClock
) -> None:
    sources = Sources(database_url=postgres_url, config=ROOT / "opsloop.yml", runbooks_dir=ROOT / "runbooks")
    senders, rounds = 4, 5
    barrier = threading.Barrier(senders)
    errors: list[BaseException] = []

    def send(n: int) -> None:
        services = assemble(sources, clock=clock, load_accounts=n == 0)
        try:
            barrier.wait()
            for r in range(rounds):
                services.intake.ingest([("prometheus", am("Race", (f"s{n}-{r}", "firing")))])
                services.intake.ingest([("monitors", v2("trigger", "same-key"))])
        except BaseException as error:
            errors.append(error)
        finally:
            services.db.dispose()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check = assemble(sources, clock=clock, load_accounts=False)
    try:
        with check.db.transaction() as s:
            refs = s.exec(select(WorkItem.title)).all()
            alerts = s.exec(select(Alert)).all()
    finally:
        check.db.dispose()
    assert sorted(refs) == ["Disk full on db-1", "Race: Race is unhappy"]
    assert len(alerts) == senders * rounds + 1
