"""Heartbeats: armed at start, moved by check-ins, missed once into one incident, ended by a check-in."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.errors import NotFound
from opsloop.heartbeats.models import HeartbeatState
from opsloop.intake.payloads import AlertmanagerWebhook, parse
from opsloop.models import OutboxMessage, WorkItem
from opsloop.table import Sources, assemble
from opsloop.timers.models import Timer
from tests.support import ROOT, FakeClock

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def policy_with_heartbeats(tmp_path: Path) -> Path:
    policy = yaml.safe_load((ROOT / "opsloop.yml").read_text())
    policy["accounts"] = str(ROOT / "accounts.yml")
    assert {"name": "beats", "kind": "heartbeat", "token_env": "OPSLOOP_TOKEN_BEATS"} in policy["integrations"]
    policy["heartbeats"] = {
        "queue-worker": {"every": "5m", "grace": "1m", "labels": {"service": "queue", "severity": "critical"}},
        "nightly-backup": {"cron": "0 3 * * *", "timezone": "Europe/Berlin", "grace": "30m",
                           "labels": {"service": "backup"}},
        "pipeline": {"every": "1m", "grace": "2m", "alertname": "Watchdog"},
    }
    path = tmp_path / "opsloop.yml"
    path.write_text(yaml.safe_dump(policy))
    return path


@pytest.fixture
def build(sources: Sources, tmp_path: Path) -> Iterator[Callable[[FakeClock], Core]]:
    built: list[Core] = []
    config = policy_with_heartbeats(tmp_path)

    def make(clock: FakeClock) -> Core:
        services = assemble(replace(sources, config=config), clock=clock)
        built.append(services)
        return services

    yield make
    for services in built:
        services.db.dispose()


def incidents(services: Core, heartbeat: str | None = None) -> list[WorkItem]:
    """The incidents of missed heartbeats (of one, when named)."""
    with services.db.transaction() as s:
        found = s.exec(select(WorkItem).order_by(col(WorkItem.id)))
        return [i for i in found if "heartbeat" in i.labels and heartbeat in (None, i.labels["heartbeat"])]


def state(services: Core, name: str) -> HeartbeatState:
    return next(row for row in services.heartbeats.states() if row.name == name)


def pending(services: Core) -> int:
    with services.db.transaction() as s:
        return len(s.exec(select(Timer.id).where(Timer.kind == "heartbeat.due",
                                                 col(Timer.fired_at).is_(None))).all())


def test_armed_at_start_once_however_often_it_is_armed(build: Callable[[FakeClock], Core]) -> None:
    services = build(FakeClock(START))
    services.heartbeats.arm()
    services.heartbeats.arm()  # a second replica starting
    row = state(services, "queue-worker")
    assert (row.state, row.due_at) == ("waiting", START + timedelta(minutes=6))
    # the next 03:00 in Berlin after 10:00 local is tomorrow's (02:00 UTC), then the grace
    assert state(services, "nightly-backup").due_at == datetime(2026, 11, 24, 2, 30, tzinfo=UTC)
    assert pending(services) == 3


def test_a_check_in_moves_the_deadline_and_leaves_no_timer_behind(
        build: Callable[[FakeClock], Core]) -> None:
    clock = FakeClock(START)
    services = build(clock)
    services.heartbeats.arm()
    for _ in range(10):
        clock.advance(minutes=2)
        services.heartbeats.check_in("pipeline", actor="system:beats")
        clock.advance(minutes=2)
        services.heartbeats.check_in("pipeline", actor="system:beats")
        done = services.heartbeats.check_in("queue-worker", actor="system:beats")
        assert done.next_due == clock.now() + timedelta(minutes=6) and done.resolved is None
        assert services.sweeper.sweep() == 0
    assert pending(services) == 3 and incidents(services) == []
    assert state(services, "queue-worker").checkins == 10


def missed_once(build: Callable[[FakeClock], Core]) -> tuple[Core, FakeClock]:
    """Core whose queue-worker checked in at START and then fell silent past every + grace, swept."""
    clock = FakeClock(START)
    services = build(clock)
    services.heartbeats.arm()
    services.heartbeats.check_in("queue-worker", actor="system:beats")
    clock.advance(minutes=6, seconds=1)
    services.sweeper.sweep()
    return services, clock


def test_one_missed_check_in_is_one_incident_and_the_next_check_in_resolves_it(
        build: Callable[[FakeClock], Core]) -> None:
    services, clock = missed_once(build)
    clock.advance(hours=3)
    services.sweeper.sweep()  # silent for hours: still one incident
    [item] = incidents(services, "queue-worker")
    assert item.title == "Heartbeat queue-worker missed: no check-in since 2026-11-23 09:00 UTC"
    assert item.labels == {"alertname": "HeartbeatMissed", "heartbeat": "queue-worker", "service": "queue",
                           "severity": "critical"}
    assert (item.severity, item.state, item.created_by) == ("sev1", "triggered", "system:opsloop")
    assert state(services, "queue-worker").state == "down"

    done = services.heartbeats.check_in("queue-worker", actor="system:beats")
    assert done.resolved == item.ref
    view = services.workitems.get(item.ref)
    assert view.item.state == "resolved"
    # resolving a sev1 drafts its review too (issue 20): the resolution is one entry of the timeline
    resolved = [e for e in view.timeline if e.action == "resolve"]
    assert [e.text for e in resolved] == [f"beats resolved {item.ref}: the heartbeat checked in again"]
    assert state(services, "queue-worker").state == "up"


def test_a_missed_heartbeat_s_review_is_owned_by_nobody_yet_and_those_who_may_assign_it_hear(
        build: Callable[[FakeClock], Core]) -> None:
    services, _ = missed_once(build)
    services.heartbeats.check_in("queue-worker", actor="system:beats")  # no person ever touched it
    [item] = incidents(services, "queue-worker")
    review = services.reviews.get(item.ref).review
    assert review.owner == ""  # a machine never owns a review: nobody would write it
    drafted = [e.text for e in services.workitems.get(item.ref).timeline if e.action == "review.drafted"]
    assert [t.split(", due")[0] for t in drafted] == [
        f"📝 opsloop drafted the review of {item.ref}: owner unassigned"]
    with services.db.transaction() as s:
        asked = sorted(m.target for m in s.exec(select(OutboxMessage).where(
            col(OutboxMessage.key).startswith(f"review:{item.ref}:unowned:drafted:"))))
        owner_dms = s.exec(select(OutboxMessage).where(
            col(OutboxMessage.key).startswith(f"review:{item.ref}:owner:"))).all()
    assert asked == ["U0ADMIN", "U0RESP1"]  # review.publish: commander and admin, who may assign it
    assert owner_dms == []  # no DM to a system actor
    services.reviews.set_owner(actor="U0RESP1", ref=item.ref, owner="U0RESP2")
    assert services.reviews.get(item.ref).review.owner == "U0RESP2"


def test_an_always_firing_alert_named_as_a_heartbeat_checks_it_in_and_opens_nothing(
        build: Callable[[FakeClock], Core]) -> None:
    clock = FakeClock(START)
    services = build(clock)
    services.heartbeats.arm()
    watchdog = parse(AlertmanagerWebhook, {
        "version": "4", "groupKey": '{}:{alertname="Watchdog"}', "status": "firing",
        "commonLabels": {"alertname": "Watchdog"},
        "alerts": [{"status": "firing", "labels": {"alertname": "Watchdog", "severity": "none"},
                    "startsAt": "2026-11-23T08:00:00Z", "fingerprint": "w1"}]})
    for _ in range(5):
        clock.advance(minutes=2)
        [outcome] = services.intake.ingest([("prometheus", watchdog)])
        assert outcome.created == [] and outcome.touched == []
    assert state(services, "pipeline").checkins == 5
    services.sweeper.sweep()
    assert incidents(services, "pipeline") == []


def test_a_deadline_that_passed_while_nothing_ran_is_armed_again_not_paged(
        build: Callable[[FakeClock], Core]) -> None:
    clock = FakeClock(START)
    build(clock).heartbeats.arm()
    clock.advance(hours=2)  # opsloop was down: nobody swept, nobody could check in
    restarted = build(clock)
    restarted.heartbeats.arm()
    assert state(restarted, "queue-worker").due_at == clock.now() + timedelta(minutes=6)
    restarted.sweeper.sweep()
    assert incidents(restarted) == []


def test_an_unknown_heartbeat_is_refused(build: Callable[[FakeClock], Core]) -> None:
    services = build(FakeClock(START))
    with pytest.raises(NotFound, match="no heartbeat 'nope'"):
        services.heartbeats.check_in("nope", actor="system:beats")


@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_two_replicas_one_missed_check_in_one_incident(build: Callable[[FakeClock], Core]) -> None:
    clock = FakeClock(START)
    replicas = [build(clock), build(clock)]
    arming = [threading.Thread(target=r.heartbeats.arm) for r in replicas]
    for thread in arming:
        thread.start()
    for thread in arming:
        thread.join()
    assert pending(replicas[0]) == 3
    clock.advance(minutes=6, seconds=1)
    barrier = threading.Barrier(2)
    fired: list[int] = []

    def sweep(services: Core) -> None:
        barrier.wait()
        fired.append(services.sweeper.sweep())

    sweeping = [threading.Thread(target=sweep, args=(r,)) for r in replicas]
    for thread in sweeping:
        thread.start()
    for thread in sweeping:
        thread.join()
    assert len(fired) == 2 and sum(fired) >= 2  # both swept; the deadlines (and a first page) fired
    missed = [i.labels["heartbeat"] for i in incidents(replicas[0])]
    assert sorted(missed) == ["pipeline", "queue-worker"]  # one incident each, not one per replica
    with replicas[1].db.transaction() as s:
        outcomes = s.exec(select(Timer.outcome).where(Timer.kind == "heartbeat.due")).all()
    assert sorted(o or "" for o in outcomes if o and o.startswith("fired")) == ["fired: INC-1", "fired: INC-2"]


@pytest.mark.parametrize(("acknowledger", "resolver", "owner", "dm"), [
    ("U0RESP2", "system:beats", "U0RESP2", True),   # the person who worked it, told by DM
    (None, "U0RESP1", "U0RESP1", False),            # the person who resolved it: sees it in the thread
])
def test_a_missed_heartbeat_s_review_is_owned_by_the_person_who_worked_it(
        build: Callable[[FakeClock], Core], acknowledger: str | None, resolver: str, owner: str,
        dm: bool) -> None:
    services, _ = missed_once(build)
    [item] = incidents(services, "queue-worker")
    if acknowledger:
        services.workitems.act(actor=acknowledger, ref=item.ref, action="acknowledge")
    if resolver.startswith("system:"):
        services.heartbeats.check_in("queue-worker", actor=resolver)
    else:
        services.workitems.act(actor=resolver, ref=item.ref, action="resolve")
    assert services.reviews.get(item.ref).review.owner == owner
    with services.db.transaction() as s:
        told = s.exec(select(OutboxMessage.target).where(
            col(OutboxMessage.key).startswith(f"review:{item.ref}:owner:"))).all()
        asked = s.exec(select(OutboxMessage.id).where(
            col(OutboxMessage.key).startswith(f"review:{item.ref}:unowned:"))).all()
    assert list(told) == ([owner] if dm else []) and asked == []
