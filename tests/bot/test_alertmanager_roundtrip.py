"""A real Prometheus Alertmanager sends its webhooks to opsloop, which groups them into one incident.

Needs Debian's `prometheus-alertmanager` (`.ci/run` installs it); skipped, with
that reason, where the binary is missing.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from bot.bootstrap import Services
from opsloop.intake.models import Alert
from opsloop.models import WorkItem
from tests.bot.live_server import LiveServer
from tests.bot.test_hooks import AM_TOKEN, hooks  # noqa: F401 - the fixture

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = [
    pytest.mark.skipif(BINARY is None, reason="prometheus-alertmanager is not installed "
                       "(apt-get install prometheus-alertmanager; .ci/run does)"),
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),  # the HTTP round trip, not storage
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def alertmanager(hooks: LiveServer, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    assert hooks.client is not None
    config = tmp_path / "alertmanager.yml"
    config.write_text(f"""\
route:
  receiver: opsloop
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: opsloop
    webhook_configs:
      - url: {hooks.client.base_url}/hooks/alertmanager
        send_resolved: true
        http_config:
          authorization: {{type: Bearer, credentials: {AM_TOKEN}}}
""")
    port = free_port()
    process = subprocess.Popen(
        [str(BINARY), f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"alertmanager did not start: {process.stderr.read().decode()[-500:]}")
        time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


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
