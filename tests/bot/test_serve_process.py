"""`opsloop serve` as the command line runs it: the edge and the core in two processes.

A signed slash command is answered and carried out, an Alertmanager webhook becomes an incident
(stored by the edge, processed by the core process), and SIGTERM stops both processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.bot.e2e import posts, responses
from tests.bot.mock_slack import MockSlack
from tests.bot.processes import free_port, rows, serve_env, wait_ready
from tests.bot.slack_requests import FORM, command_body, sign
from tests.bot.test_hooks import am_payload
from tests.support import wait_until

pytestmark = pytest.mark.slow
SECRET, TOKEN = "serve-signing-secret", "serve-alertmanager-token"


@dataclass
class Served:
    server: subprocess.Popen[bytes]
    url: str
    database: str
    mock: MockSlack
    log: Path

    def rows(self, query: str) -> list[tuple[object, ...]]:
        return rows(self.database, query)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return found


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    mock = MockSlack().start()
    database = f"sqlite:///{tmp_path / 'opsloop.db'}"
    port = free_port()
    env = serve_env(database, mock.api_url, SLACK_SIGNING_SECRET=SECRET, OPSLOOP_TOKEN_PROMETHEUS=TOKEN,
                    OPSLOOP_LOG_LEVEL="WARNING")
    log = tmp_path / "serve.log"
    server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port)], env=env,
                              cwd=tmp_path, stderr=log.open("wb"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(server, lambda: httpx.get(f"{url}/readyz", timeout=1), what="opsloop serve",
                   said=log.read_text)
        yield Served(server, url, database, mock, log)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
        mock.stop()


def test_serve_answers_commands_and_turns_webhooks_into_incidents_in_its_core_process(served: Served) -> None:
    [core] = _children(served.server.pid)  # the core process, forked at start-up

    body = command_body("/incident", 'declare "Checkout down" sev2', user="U0RESP1", respond_to=served.mock.url)
    answer = httpx.post(f"{served.url}/slack/events", content=body,
                        headers={"Content-Type": FORM, **sign(body, SECRET)}, timeout=30)
    assert answer.status_code == 200
    said = (answer.text, responses(served.mock))  # in the acknowledgement, or through response_url
    wait_until(lambda: "INC-1" in answer.text or any("INC-1" in r for r in responses(served.mock)),
               what=f"the declare to be answered (so far {said})")
    assert served.rows("SELECT title FROM work_items") == [("Checkout down",)]

    hook = httpx.post(f"{served.url}/hooks/alertmanager", content=json.dumps(am_payload("DiskFull", "fp1")),
                      headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
                      timeout=30)
    assert hook.status_code == 200
    wait_until(lambda: len(served.rows("SELECT id FROM work_items")) == 2,
               what="the core process to open the webhook's incident")
    # the core process's outbox workers deliver to Slack: the incidents' cards are posted
    wait_until(lambda: len(posts(served.mock)) >= 2, what="the cards to be posted")
    def metrics() -> str:
        return httpx.get(f"{served.url}/metrics", timeout=30).text

    # the core process tells the edge what the inbox opened over the pipe, just after its commit
    wait_until(lambda: "opsloop_intake_incidents_created_total 1.0" in metrics(),
               what="the edge's metric of incidents the core process opened")
    assert "opsloop_outbox_delivered_total" in metrics()
    assert httpx.get(f"{served.url}/healthz", timeout=30).json() == {"status": "ok"}

    served.server.send_signal(signal.SIGTERM)
    # uvicorn shuts down, then raises the signal it caught again: the status says SIGTERM ended it
    assert served.server.wait(timeout=120) in (0, -signal.SIGTERM), served.log.read_text()[-800:]
    wait_until(lambda: not Path(f"/proc/{core}").exists(), what="the core process to end")
    said = served.log.read_text()
    assert "Traceback" not in said and "core process" not in said  # no unexpected exit, no kill


def test_when_the_core_process_dies_serve_says_it_is_not_ready_and_still_acknowledges(served: Served) -> None:
    [core] = _children(served.server.pid)
    os.kill(core, signal.SIGKILL)

    def readiness() -> httpx.Response:
        return httpx.get(f"{served.url}/readyz", timeout=30)

    wait_until(lambda: readiness().status_code == 503, what="/readyz to say the core is gone")
    assert "the core process exited" in readiness().json()["reason"]
    liveness = httpx.get(f"{served.url}/healthz", timeout=30)  # a supervisor restarts it
    assert liveness.status_code == 503 and "the core process exited" in liveness.json()["reason"]
    assert "the core process exited unexpectedly" in served.log.read_text()

    body = command_body("/incident", 'declare "Nobody home" sev3', user="U0RESP1", respond_to=served.mock.url)
    answer = httpx.post(f"{served.url}/slack/events", content=body,
                        headers={"Content-Type": FORM, **sign(body, SECRET)}, timeout=30)
    assert answer.status_code == 200  # acknowledged, and the person is told it did not work
    wait_until(lambda: any("went wrong" in r for r in responses(served.mock)) or "went wrong" in answer.text,
               what="the person to be told")
    assert served.rows("SELECT title FROM work_items") == []
    served.server.send_signal(signal.SIGTERM)
    assert served.server.wait(timeout=120) in (0, -signal.SIGTERM)
