"""The inbox: accepted webhooks are processed after, in the order accepted, exactly once."""

from __future__ import annotations

import json
import threading
from typing import Any

from sqlalchemy import event
from sqlmodel import col, select

from opsloop.intake.inbox import ALERTMANAGER, EVENTS_V2, Accepted, Inbox, inbox_depth
from opsloop.intake.models import Alert, InboxEntry
from opsloop.models import WorkItem


def am_body(group: str, *alerts: tuple[str, str]) -> str:
    return json.dumps({
        "version": "4", "groupKey": f'{{}}:{{alertname="{group}"}}', "status": "firing", "receiver": "opsloop",
        "groupLabels": {"alertname": group}, "commonLabels": {"alertname": group, "severity": "warning"},
        "commonAnnotations": {"summary": f"{group} is unhappy"},
        "alerts": [{"status": status, "labels": {"alertname": group, "instance": fp}, "annotations": {},
                    "startsAt": "2026-11-23T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fp}
                   for fp, status in alerts]})


def am(group: str, *alerts: tuple[str, str]) -> Accepted:
    return Accepted("prometheus", ALERTMANAGER, am_body(group, *alerts))


def inbox_of(services: Any) -> Inbox:
    return Inbox(services.db, services.intake, services.clock)


def rows(services: Any) -> list[InboxEntry]:
    with services.db.transaction() as s:
        return list(s.exec(select(InboxEntry).order_by(col(InboxEntry.id))))


def states(services: Any) -> list[tuple[str, str]]:
    with services.db.transaction() as s:
        return [(i.ref, i.state) for i in s.exec(select(WorkItem).order_by(col(WorkItem.id)))]


def test_accepted_webhooks_open_nothing_until_processed_then_exactly_once(services: Any) -> None:
    inbox = inbox_of(services)
    inbox.put([am("Api5xx", ("a1", "firing")), am("Api5xx", ("a1", "firing"), ("a2", "firing"))])
    assert states(services) == [] and len(rows(services)) == 2  # stored: an answer could be given
    assert inbox.process() == 2
    assert rows(services) == [] and inbox.process() == 0  # taken in the transaction that processed them
    assert states(services) == [("INC-1", "triggered")]
    with services.db.transaction() as s:
        assert sorted((a.key, a.seen) for a in s.exec(select(Alert))) == [("a1", 2), ("a2", 1)]


def test_entries_are_processed_in_the_order_they_were_accepted(services: Any) -> None:
    inbox = inbox_of(services)
    # fired, then resolved: mitigated. Taken the other way round it would still be firing.
    inbox.put([am("DiskFull", ("d1", "firing"))])
    inbox.put([am("DiskFull", ("d1", "resolved"))])
    while inbox.process(limit=1):
        pass
    assert states(services) == [("INC-1", "mitigated")]


def test_an_events_v2_event_keeps_the_dedup_key_it_was_answered_with(services: Any) -> None:
    inbox = inbox_of(services)
    trigger = {"routing_key": "rk", "event_action": "trigger",
               "payload": {"summary": "Disk full on db-1", "source": "db-1", "severity": "error"}}
    inbox.put([Accepted("monitors", EVENTS_V2, json.dumps(trigger), dedup_key="answered-key")])
    inbox.process()
    inbox.put([Accepted("monitors", EVENTS_V2, json.dumps(
        {"routing_key": "rk", "event_action": "resolve", "dedup_key": "answered-key"}), dedup_key="answered-key")])
    inbox.process()
    assert states(services) == [("INC-1", "resolved")]


def test_an_entry_that_cannot_be_processed_is_set_aside_and_the_rest_go_on(services: Any) -> None:
    inbox = inbox_of(services)
    broken = Accepted("prometheus", ALERTMANAGER, json.dumps({"version": "4", "alerts": "not a list"}))
    inbox.put([am("First", ("f1", "firing")), broken, am("Third", ("t1", "firing"))])
    assert inbox.process() == 3
    assert states(services) == [("INC-1", "triggered"), ("INC-2", "triggered")]
    [kept] = rows(services)
    assert kept.failed_at is not None and kept.error is not None and "PayloadError" in kept.error
    assert inbox.process() == 0  # set aside: not tried again and again
    with services.db.transaction() as s:
        assert inbox_depth(s) == (0, 1)  # nothing waiting, one set aside


def test_two_processors_at_once_process_each_entry_once(services: Any) -> None:
    inbox = inbox_of(services)
    inbox.put([am(f"G{n % 4}", (f"fp-{n}", "firing")) for n in range(120)])
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def processor() -> None:
        start.wait()
        try:
            while inbox.process(limit=7):
                pass
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=processor) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert len(states(services)) == 4  # one incident per group, never two
    with services.db.transaction() as s:
        seen = [a.seen for a in s.exec(select(Alert))]
    assert len(seen) == 120 and set(seen) == {1}  # no entry was processed twice
    assert rows(services) == []


def test_a_poll_of_an_empty_inbox_takes_no_lock(services: Any) -> None:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement)

    event.listen(services.db.engine, "before_cursor_execute", record)
    try:
        assert inbox_of(services).process() == 0
    finally:
        event.remove(services.db.engine, "before_cursor_execute", record)
    assert seen and not [s for s in seen if "FOR UPDATE" in s or "IMMEDIATE" in s], seen
