"""Alert intake over HTTP: authentication, refusals that change nothing, dedup and grouping."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select

from bot.bootstrap import Services
from bot.hooks import InboxWorker, hook_routes
from bot.http import create_http_app
from bot.settings import Settings
from bot.slack.wiring import wire_slack
from opsloop.intake import inbox as inbox_module
from opsloop.intake.inbox import ALERTMANAGER, Accepted, Inbox
from opsloop.intake.models import Alert, InboxEntry
from opsloop.models import WorkItem
from tests.bot.e2e import wait_for
from tests.bot.live_server import LiveServer
from tests.support import FakeClock

AM_TOKEN, V2_KEY = "am-secret-token", "v2-routing-key-0123456789abcdef"


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch, slack_services: Services, slack_settings: Settings,
          clock: FakeClock) -> Iterator[LiveServer]:
    monkeypatch.setenv("OPSLOOP_TOKEN_PROMETHEUS", AM_TOKEN)
    monkeypatch.setenv("OPSLOOP_ROUTING_KEY_MONITORS", V2_KEY)
    dispatcher = wire_slack(slack_services, idle=0.05)
    app = create_http_app(slack_services, slack_settings, dispatcher=dispatcher)
    live = LiveServer(app, dispatcher=dispatcher, clock=clock, secret="unused").start()
    yield live
    live.stop()


def am_payload(group: str = "HighLatency", *fingerprints: str, status: str = "firing") -> dict[str, Any]:
    return {
        "version": "4", "groupKey": f'{{}}:{{alertname="{group}"}}', "status": status, "receiver": "opsloop",
        "groupLabels": {"alertname": group}, "commonLabels": {"alertname": group, "severity": "critical"},
        "commonAnnotations": {"summary": "p99 over 2s"}, "externalURL": "http://am:9093",
        "alerts": [{"status": status, "labels": {"alertname": group, "instance": fp},
                    "annotations": {}, "startsAt": "2026-11-23T09:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fp} for fp in fingerprints or ("fp1",)],
    }


def post_am(live: LiveServer, body: Any, token: str | None = AM_TOKEN, raw: bytes | None = None) -> httpx.Response:
    assert live.client is not None
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return live.client.post("/hooks/alertmanager", content=raw if raw is not None else json.dumps(body),
                            headers=headers)


def post_v2(live: LiveServer, body: Any) -> httpx.Response:
    assert live.client is not None
    return live.client.post("/hooks/events/v2", json=body)


def inbox(services: Services) -> int:
    """Accepted webhooks waiting to be processed."""
    with services.db.transaction() as s:
        return len(s.exec(select(InboxEntry).where(col(InboxEntry.failed_at).is_(None))).all())


def stored(services: Services) -> tuple[int, int]:
    """(incidents, alerts) once everything accepted has been processed."""
    wait_for(lambda: inbox(services) == 0, what="the inbox to be processed")
    with services.db.transaction() as s:
        return len(s.exec(select(WorkItem)).all()), len(s.exec(select(Alert)).all())


def test_alertmanager_groups_and_dedups_repeat_sends(hooks: LiveServer, slack_services: Services) -> None:
    first = post_am(hooks, am_payload("HighLatency", "fp1", "fp2"))
    assert first.status_code == 200 and first.json() == {"status": "ok", "accepted": 2}
    assert stored(slack_services) == (1, 2)
    again = post_am(hooks, am_payload("HighLatency", "fp1", "fp2", "fp3"))  # repeat_interval, plus one
    assert again.json() == {"status": "ok", "accepted": 3}
    assert stored(slack_services) == (1, 3)
    with slack_services.db.transaction() as s:
        assert [a.seen for a in s.exec(select(Alert).order_by(col(Alert.id)))] == [2, 2, 1]
    with slack_services.db.transaction() as s:
        assert s.exec(select(WorkItem)).one().severity == "sev1"  # severity=critical


@pytest.mark.parametrize("token", [None, "wrong-token", "am-secret-token-but-longer"])
def test_alertmanager_without_the_token_is_refused_and_nothing_is_stored(
    hooks: LiveServer, slack_services: Services, token: str | None
) -> None:
    answer = post_am(hooks, am_payload(), token=token)
    assert answer.status_code == 401
    assert stored(slack_services) == (0, 0)


@pytest.mark.parametrize(
    ("raw", "status", "expected"),
    [
        (b"{not json", 400, "(body): not JSON"),
        (json.dumps({"groupKey": "g", "status": "firing", "alerts": [{"labels": []}]}).encode(), 422,
         "alerts[0].labels: Input should be a valid dictionary"),
        (json.dumps({"status": "firing", "alerts": []}).encode(), 422, "groupKey: Field required"),
        (b"{" + b'"x": "' + b"a" * (1024 * 1024) + b'"}', 413, "larger than 1 MiB"),
    ],
)
def test_bad_alertmanager_bodies_name_the_problem_and_store_nothing(
    hooks: LiveServer, slack_services: Services, raw: bytes, status: int, expected: str
) -> None:
    answer = post_am(hooks, None, raw=raw)
    assert answer.status_code == status
    assert any(expected in e for e in answer.json()["errors"]), answer.json()
    assert stored(slack_services) == (0, 0)


def test_events_v2_answers_like_pagerduty(hooks: LiveServer, slack_services: Services) -> None:
    trigger = {"routing_key": V2_KEY, "event_action": "trigger",
               "payload": {"summary": "Disk full", "source": "db-1", "severity": "critical"}}
    first = post_v2(hooks, trigger)
    assert first.status_code == 202
    body = first.json()
    assert body["status"] == "success" and body["message"] == "Event processed"
    key = body["dedup_key"]
    assert key
    assert post_v2(hooks, {**trigger, "dedup_key": key}).json()["dedup_key"] == key
    assert post_v2(hooks, {"routing_key": V2_KEY, "event_action": "resolve", "dedup_key": key}).status_code == 202
    reborn = post_v2(hooks, {**trigger, "dedup_key": key})
    assert reborn.status_code == 202
    assert stored(slack_services) == (2, 2)  # processed in the order accepted
    with slack_services.db.transaction() as s:
        states = [i.state for i in s.exec(select(WorkItem).order_by(WorkItem.id))]
    assert states == ["resolved", "triggered"]  # resolve resolves; then the same key opens a new incident


def test_events_v2_refusals(hooks: LiveServer, slack_services: Services) -> None:
    unknown = post_v2(hooks, {"routing_key": "nope", "event_action": "trigger",
                              "payload": {"summary": "x", "source": "y", "severity": "info"}})
    assert unknown.status_code == 401
    invalid = post_v2(hooks, {"routing_key": V2_KEY, "event_action": "trigger", "payload": {"source": "y"}})
    assert invalid.status_code == 400
    errors = invalid.json()["errors"]
    assert any("payload.summary" in e for e in errors) and any("payload.severity" in e for e in errors)
    assert stored(slack_services) == (0, 0)


def test_a_burst_of_concurrent_senders_is_stored_whole(hooks: LiveServer, slack_services: Services) -> None:
    import concurrent.futures

    def send(n: int) -> int:
        return post_am(hooks, am_payload(f"G{n % 5}", f"fp-{n}")).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(send, range(200)))
    assert statuses == [200] * 200
    assert stored(slack_services) == (5, 200)


def test_an_answer_waits_for_storage_not_for_processing(
        monkeypatch: pytest.MonkeyPatch, hooks: LiveServer, slack_services: Services) -> None:
    processing = threading.Event()
    release = threading.Event()
    ingest_taken = slack_services.intake.ingest_taken

    def slow(take: Any) -> Any:  # the worker is held inside processing until the test lets it go
        processing.set()
        release.wait(timeout=60)
        return ingest_taken(take)

    monkeypatch.setattr(slack_services.intake, "ingest_taken", slow)
    first = post_am(hooks, am_payload("Slow", "s1"))
    assert first.status_code == 200
    assert processing.wait(timeout=30)
    # the worker is busy with the first webhook: the second is still answered, and stored
    second = post_am(hooks, am_payload("Slow", "s2"))
    assert second.json() == {"status": "ok", "accepted": 1}
    assert inbox(slack_services) >= 1
    release.set()
    assert stored(slack_services) == (1, 2)


def test_what_a_previous_run_accepted_is_processed_at_start_and_a_stop_processes_what_is_left(
        slack_services: Services) -> None:
    registry = CollectorRegistry()
    first = hook_routes(slack_services, registry)
    inbox_ = Inbox(slack_services.db, slack_services.intake, slack_services.clock)
    inbox_.put([Accepted("prometheus", ALERTMANAGER, json.dumps(am_payload("Left", "l1")))])
    first.worker.stop()  # never started (a stop right after a crash-restart): it processes what is left
    assert stored(slack_services) == (1, 1)
    inbox_.put([Accepted("prometheus", ALERTMANAGER, json.dumps(am_payload("Later", "l2")))])
    second = hook_routes(slack_services, CollectorRegistry())
    second.start()  # a new run: what was accepted before goes first
    try:
        assert stored(slack_services) == (2, 2)
    finally:
        second.worker.stop()


def test_metrics_show_what_waits_in_the_inbox_and_what_was_set_aside(
        hooks: LiveServer, slack_services: Services) -> None:
    inbox_ = Inbox(slack_services.db, slack_services.intake, slack_services.clock)
    inbox_.put([Accepted("prometheus", ALERTMANAGER, json.dumps({"version": "4", "alerts": "not a list"}))])
    assert post_am(hooks, am_payload("Fine", "f1")).status_code == 200  # wakes the worker
    wait_for(lambda: {"opsloop_intake_inbox_set_aside 1.0", "opsloop_intake_inbox_waiting 0.0"}
             <= set(metrics(hooks).splitlines()), what="the inbox worked off, one entry set aside")
    assert stored(slack_services) == (1, 1)  # the good webhook was processed all the same


def metrics(live: LiveServer) -> str:
    assert live.client is not None
    return live.client.get("/metrics").text


def test_a_webhook_that_cannot_be_stored_gets_503_and_nothing_is_half_stored(
        monkeypatch: pytest.MonkeyPatch, hooks: LiveServer, slack_services: Services) -> None:
    def database_away(*_args: Any) -> None:
        raise OperationalError("INSERT INTO intake_inbox", {}, Exception("connection refused"))

    monkeypatch.setattr(inbox_module, "insert", database_away)  # the inbox's INSERT fails, as with no database
    refused = post_am(hooks, am_payload("Lost", "l1"))
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert "send it again" in refused.json()["error"]
    event = post_v2(hooks, {"routing_key": V2_KEY, "event_action": "trigger",
                            "payload": {"summary": "Disk full", "source": "db-1", "severity": "critical"}})
    assert event.status_code == 503 and event.json()["status"] == "unavailable"
    monkeypatch.undo()
    assert stored(slack_services) == (0, 0) and inbox(slack_services) == 0
    assert post_am(hooks, am_payload("Lost", "l1")).status_code == 200  # the sender's retry lands
    assert stored(slack_services) == (1, 1)


def test_webhooks_are_stored_while_every_core_thread_is_busy(hooks: LiveServer, slack_services: Services) -> None:
    release = threading.Event()
    # every core thread taken, as a burst of declares takes them (straight on its executor: no event loop here)
    busy = [slack_services.pool._executor.submit(release.wait, 30) for _ in range(slack_services.pool.threads)]
    try:
        answer = post_am(hooks, am_payload("WhileBusy", "w1"))
        assert answer.status_code == 200 and answer.json()["accepted"] == 1
        assert all(not b.done() for b in busy)  # the core is still busy: the webhook did not wait for it
    finally:
        release.set()
    assert stored(slack_services) == (1, 1)


@pytest.mark.parametrize(("storming", "largest"), [(True, 2), (False, 5)])
def test_while_webhooks_keep_arriving_the_worker_processes_in_short_transactions(
        monkeypatch: pytest.MonkeyPatch, slack_services: Services, storming: bool, largest: int) -> None:
    """Each processing transaction holds SQLite's write lock: during a storm, stores wait behind short ones."""
    inbox_ = Inbox(slack_services.db, slack_services.intake, slack_services.clock)
    inbox_.put([Accepted("prometheus", ALERTMANAGER, json.dumps(am_payload(f"G{n}", f"f{n}"))) for n in range(5)])
    sizes: list[int] = []
    process = inbox_.process

    def counted(limit: int = inbox_module.BATCH) -> int:
        done = process(limit)
        sizes.append(done)
        return done

    monkeypatch.setattr(inbox_, "process", counted)
    worker = InboxWorker(inbox_, busy=lambda: storming, patience=0.0, storm_batch=2, idle=0.05)
    worker.start()
    try:
        assert stored(slack_services) == (5, 5)
    finally:
        worker.stop()
    assert max(sizes) == largest and sum(sizes) == 5
