"""The card of an alert-born incident carries what the alerts said; changes on its service show beside it."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from opsloop.core import Core
from opsloop.intake.payloads import AlertmanagerWebhook, ChangeEvent, parse, parse_v2
from tests.support import FakeClock

EXTERNAL = "http://alertmanager.example:9093"


def crashloop(*pods: str, status: str = "firing") -> AlertmanagerWebhook:
    """Three pods of one service crash-looping, grouped by alertname and service."""
    common = {"alertname": "KubePodCrashLooping", "service": "checkout-api", "namespace": "prod",
              "tenant": "acme", "severity": "critical", "prometheus": "k8s/main"}
    return parse(AlertmanagerWebhook, {
        "version": "4", "groupKey": '{}:{alertname="KubePodCrashLooping", service="checkout-api"}',
        "status": status, "receiver": "opsloop", "externalURL": EXTERNAL,
        "groupLabels": {"alertname": "KubePodCrashLooping", "service": "checkout-api"},
        "commonLabels": common,
        "commonAnnotations": {"summary": "Checkout pods are crash looping",
                              "runbook_url": "https://runbooks.example/crashloop"},
        "alerts": [{"status": status, "labels": {**common, "pod": pod},
                    "annotations": {"summary": f"Pod {pod} is crash looping",
                                    "description": f"{pod} restarted 5 times in 10 minutes",
                                    "runbook_url": "https://runbooks.example/crashloop"},
                    "startsAt": "2026-11-23T08:58:00Z", "fingerprint": pod,
                    "generatorURL": "http://prometheus.example/graph?g0.expr=rate%28x%29"} for pod in pods],
    })


def test_the_card_shows_the_group_not_the_first_pod(services: Core) -> None:
    services.intake.ingest([("prometheus", crashloop("checkout-7f9"))])
    services.intake.ingest([("prometheus", crashloop("checkout-7f9", "checkout-a01", "checkout-b22"))])
    card = services.cards.of("INC-1")
    assert card.text.endswith("INC-1 KubePodCrashLooping: Checkout pods are crash looping")
    assert card.body is not None
    lines = card.body.splitlines()
    assert lines[0] == ("*3 alerts on checkout-api* · service: checkout-api · tenant: acme · namespace: prod")
    assert "Summary: Checkout pods are crash looping" in lines
    assert "Description: checkout-7f9 restarted 5 times in 10 minutes" in lines
    assert "<http://prometheus.example/graph?g0.expr=rate%28x%29|Source>" in card.body
    [url] = re.findall(r"<([^|>]+)\|Silence>", card.body)
    assert url.startswith(f"{EXTERNAL}/#/silences/new?filter=")
    assert unquote(url.partition("filter=")[2]) == '{alertname="KubePodCrashLooping",service="checkout-api"}'
    [runbook] = [b for b in card.buttons if b.url]
    assert (runbook.label, runbook.url, runbook.action) == ("Runbook ↗", "https://runbooks.example/crashloop",
                                                           "link.open")
    assert "pod" not in lines[0] and "prometheus" not in lines[0]  # which machine, not what is wrong
    assert "<@system:" not in card.plain() and "opened by prometheus" in card.plain()


def test_a_runbook_url_that_is_not_a_web_address_gets_no_button(services: Core) -> None:
    hook = crashloop("p1").model_dump()
    hook["commonAnnotations"]["runbook_url"] = "javascript:alert(document.cookie)"
    for alert in hook["alerts"]:
        alert["annotations"]["runbook_url"] = "file:///etc/passwd"
    services.intake.ingest([("prometheus", parse(AlertmanagerWebhook, hook))])
    card = services.cards.of("INC-1")
    assert not [b for b in card.buttons if b.url]
    assert card.body is not None and "javascript" not in card.body and "file:" not in card.body


def change(summary: str, at: str, service: str = "checkout-api", **extra: Any) -> ChangeEvent:
    return parse(ChangeEvent, {"routing_key": "rk", "payload": {
        "summary": summary, "source": "ci", "timestamp": at, "custom_details": {"service": service}}, **extra})


def test_recent_changes_on_the_same_service_show_on_the_card_status_and_record(
        services: Core, clock: FakeClock) -> None:
    # the incident starts at 09:00 (the fake clock)
    services.changes.record("monitors", change("deploy v1.4.2", "2026-11-23T08:48:00Z",
                                               links=[{"href": "https://ci.example/run/9", "text": "run"}]))
    services.changes.record("monitors", change("config flag on", "2026-11-23T08:30:00Z", service="billing"))
    services.changes.record("monitors", change("deploy v1.4.1", "2026-11-23T06:30:00Z"))  # before the window
    services.intake.ingest([("prometheus", crashloop("checkout-7f9"))])
    expected = "Recent changes: <https://ci.example/run/9|deploy v1.4.2> by ci, 12 min before"
    card = services.cards.of("INC-1")
    assert card.body is not None and expected in card.body.splitlines()
    assert "billing" not in card.body and "v1.4.1" not in card.body
    view, status_card, _ = services.cards.status("INC-1")
    assert status_card.body is not None and expected in status_card.body
    assert [e.text for e in view.timeline if e.action == "changes"] == [expected]
    clock.advance(minutes=5)  # a rollback while it is open shows too
    services.changes.record("monitors", change("rollback to v1.4.1", "2026-11-23T09:04:00Z"))
    body = services.cards.of("INC-1").body or ""
    assert "rollback to v1.4.1 by ci, 4 min after; " in body


def test_an_incident_without_a_service_shows_no_changes(services: Core) -> None:
    services.changes.record("monitors", change("deploy v2", "2026-11-23T08:59:00Z"))
    services.intake.ingest([("monitors", parse_v2({"routing_key": "rk", "event_action": "trigger",
                                                   "payload": {"summary": "s", "source": "x",
                                                               "severity": "info"}}))])
    assert "Recent changes" not in (services.cards.of("INC-1").body or "")
