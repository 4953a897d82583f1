"""`opsloop intake inbox` and `opsloop intake retry ID ... | --all`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import col, select

from bot.bootstrap import Services
from opsloop.intake.inbox import ALERTMANAGER, Accepted, Inbox
from opsloop.models import AuditEvent, WorkItem
from tests.bot.conftest import Run


@pytest.fixture
def cli(run_cli: Run) -> Run:
    return run_cli


def webhook(group: str) -> Accepted:
    return Accepted("prometheus", ALERTMANAGER, json.dumps({
        "version": "4", "groupKey": f'{{}}:{{alertname="{group}"}}', "status": "firing", "receiver": "opsloop",
        "groupLabels": {"alertname": group}, "commonLabels": {"alertname": group},
        "commonAnnotations": {"summary": "p99 over 2s"},
        "alerts": [{"status": "firing", "labels": {"alertname": group, "instance": "i-1"}, "annotations": {},
                    "startsAt": "2026-11-23T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "f1"}]}))


def test_a_webhook_set_aside_is_listed_with_its_error_and_a_retry_processes_it(
        cli: Run, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = Inbox(services.db, services.intake, services.clock)
    inbox.put([webhook("Api5xx")])
    real = services.intake.ingest_taken

    def routing_broken(take: Any) -> Any:  # a fault of the moment (say, a bad deploy), not of the webhook
        raise RuntimeError("routing is broken right now")

    monkeypatch.setattr(services.intake, "ingest_taken", routing_broken)
    assert inbox.process() == 1  # set aside, not lost
    code, out, _ = cli("intake", "inbox")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "waiting: 0; set aside: 1"
    assert lines[1].startswith("#1  prometheus (alertmanager)  accepted ")
    assert lines[2].strip() == "RuntimeError: routing is broken right now"

    assert cli("intake", "retry", "7")[0] == 2  # not set aside: nothing changes
    assert cli("intake", "retry")[0] == 2 and cli("intake", "retry", "1", "--all")[0] == 2
    code, out, _ = cli("intake", "retry", "1")
    assert code == 0 and out.startswith("put back in line: #1")
    monkeypatch.setattr(services.intake, "ingest_taken", real)  # the fault is fixed
    assert inbox.process() == 1
    with services.db.transaction() as s:
        assert [i.title for i in s.exec(select(WorkItem))] == ["Api5xx: p99 over 2s"]
        retried = s.exec(select(AuditEvent).where(col(AuditEvent.action) == "intake.retried")).one()
        assert (retried.actor, retried.after) == ("system:cli", {"entries": [1]})
    assert cli("intake", "inbox")[1].splitlines() == ["waiting: 0; set aside: 0"]
    assert cli("intake", "retry", "--all")[1].strip() == "nothing was set aside; nothing changed"
