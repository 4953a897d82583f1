"""A real Prometheus Alertmanager sends its webhooks to opsloop, which groups them into one incident.

Needs Debian's `prometheus-alertmanager` (`.ci/run` installs it); skipped, with
that reason, where the binary is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from bot.bootstrap import Services
from opsloop.intake.models import Alert
from opsloop.models import WorkItem
from tests.bot.live_server import LiveServer
from tests.bot.processes import free_port, wait_ready
from tests.bot.test_hooks import AM_TOKEN, V2_KEY, hooks  # noqa: F401 - the fixture

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = [
    pytest.mark.skipif(BINARY is None, reason="prometheus-alertmanager is not installed "
                       "(apt-get install prometheus-alertmanager; .ci/run does)"),
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),  # the HTTP round trip, not storage
]


def start_alertmanager(tmp_path: Path, receiver: str, *, group_by: str = "[alertname]") -> subprocess.Popen[bytes]:
    """A real Alertmanager routing everything to `receiver` (YAML of one receiver), answering on a port."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(f"""\
route:
  receiver: opsloop
  group_by: {group_by}
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: opsloop
{receiver}
""")
    port = free_port()
    process = subprocess.Popen(
        [str(BINARY), f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    process.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    wait_ready(process, lambda: httpx.get(f"{process.url}/-/ready", timeout=1),  # type: ignore[attr-defined]
               what="alertmanager", said=lambda: process.stderr.read().decode(), timeout=20)  # type: ignore[union-attr]
    return process


@contextmanager
def running(process: subprocess.Popen[bytes]) -> Iterator[str]:
    try:
        yield process.url  # type: ignore[attr-defined]
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def alertmanager(hooks: LiveServer, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    assert hooks.client is not None
    with running(start_alertmanager(tmp_path, f"""\
    webhook_configs:
      - url: {hooks.client.base_url}/hooks/alertmanager
        send_resolved: true
        http_config:
          authorization: {{type: Bearer, credentials: {AM_TOKEN}}}""")) as url:
        yield url


@pytest.fixture
def alertmanager_pd(hooks: LiveServer, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    """Alertmanager's own PagerDuty receiver, its `url` pointed at opsloop; labels ride in `details`."""
    assert hooks.client is not None
    with running(start_alertmanager(tmp_path, f"""\
    pagerduty_configs:
      - url: {hooks.client.base_url}/hooks/events/v2/enqueue
        routing_key: {V2_KEY}
        send_resolved: true
        severity: critical
        details:
          tenant: '{{{{ .CommonLabels.tenant }}}}'
          service: '{{{{ .CommonLabels.service }}}}'""", group_by="[alertname, service]")) as url:
        yield url


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for opsloop to receive Alertmanager's webhook")
        time.sleep(0.2)


def test_alertmanager_groups_alerts_into_one_incident(alertmanager: str, slack_services: Services) -> None:
    alerts = [{"labels": {"alertname": "CheckoutErrors", "severity": "critical", "instance": f"web-{n}"},
               "annotations": {"summary": "5xx above 5%"}} for n in range(3)]
    answer = httpx.post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=5)
    assert answer.status_code == 200, answer.text

    def stored() -> tuple[list[WorkItem], list[Alert]]:
        with slack_services.db.transaction() as s:
            return list(s.exec(select(WorkItem))), list(s.exec(select(Alert)))

    wait_for(lambda: len(stored()[1]) == 3)
    items, rows = stored()
    assert [(i.title, i.severity, i.created_by) for i in items] == [
        ("CheckoutErrors: 5xx above 5%", "sev1", "system:prometheus")]
    assert {r.labels["instance"] for r in rows} == {"web-0", "web-1", "web-2"}
    assert {len(r.key) for r in rows} == {16}  # Alertmanager's own fingerprints

    ended = datetime.now(UTC).isoformat()
    answer = httpx.post(f"{alertmanager}/api/v2/alerts", json=[{**a, "endsAt": ended} for a in alerts],
                        timeout=5)
    assert answer.status_code == 200, answer.text
    wait_for(lambda: stored()[0][0].state == "mitigated")
    assert {r.status for r in stored()[1]} == {"resolved"}


def test_alertmanagers_pagerduty_receiver_pointed_at_opsloop(alertmanager_pd: str, slack_services: Services) -> None:
    labels = {"alertname": "CheckoutErrors", "service": "checkout-api", "tenant": "acme"}
    alerts = [{"labels": {**labels, "instance": f"web-{n}"}, "annotations": {"summary": "5xx above 5%"}}
              for n in range(2)]
    answer = httpx.post(f"{alertmanager_pd}/api/v2/alerts", json=alerts, timeout=5)
    assert answer.status_code == 200, answer.text

    def incidents() -> list[WorkItem]:
        with slack_services.db.transaction() as s:
            return list(s.exec(select(WorkItem)))

    wait_for(lambda: len(incidents()) == 1)
    [item] = incidents()
    assert item.labels["service"] == "checkout-api" and item.labels["tenant"] == "acme"
    assert (item.severity, item.created_by) == ("sev1", "system:monitors")
    assert slack_services.workitems.get(item.ref).tenants == ["acme"]

    ended = datetime.now(UTC).isoformat()
    answer = httpx.post(f"{alertmanager_pd}/api/v2/alerts", json=[{**a, "endsAt": ended} for a in alerts],
                        timeout=5)
    assert answer.status_code == 200, answer.text
    wait_for(lambda: incidents()[0].state == "resolved")  # PagerDuty's semantics: resolving resolves
    assert len(incidents()) == 1
