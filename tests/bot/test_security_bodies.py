"""Issue 15: every route stops reading a body at its limit while it streams, through the real server.

A client streams a 300 MiB chunked body (no Content-Length) to each route, signed or not, with a
token or not; it must be answered 413 or 401 long before the end, and the server's memory must stay
flat. The server runs in this process, so this process's resident memory is what is watched.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.bootstrap import Services
from bot.http import create_http_app
from bot.settings import Settings
from bot.slack.wiring import wire_slack
from tests.bot.live_server import LiveServer
from tests.support import FakeClock

TOTAL = 300 * 1024 * 1024
CHUNK = 64 * 1024
AM_TOKEN, SIGNALS_TOKEN = "am-secret-token", "signals-secret-token"
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def resident() -> int:
    """This process's resident set size in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Peak:
    """Samples resident memory in a thread until stopped; `.growth` is the peak over the start."""

    def __init__(self) -> None:
        self.start = resident()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, resident())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.start


def stream_huge(port: int, path: str, headers: dict[str, str]) -> tuple[int, int]:
    """POST a 300 MiB chunked body; stop when the server answers or hangs up. (status, bytes sent)."""
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Transfer-Encoding: chunked",
            "Content-Type: application/json", *(f"{k}: {v}" for k, v in headers.items())]
    chunk = f"{CHUNK:x}\r\n".encode() + b"[" * CHUNK + b"\r\n"
    sent = 0
    pending = memoryview(b"")
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.setblocking(False)
        deadline = time.monotonic() + 60
        while sent < TOTAL and time.monotonic() < deadline:
            try:
                answer += sock.recv(65536)
                break  # the server answered (or hung up: b"")
            except BlockingIOError:
                pass
            except OSError:
                break
            if not pending:
                pending = memoryview(chunk)
            try:
                wrote = sock.send(pending)  # a partial send goes on where it stopped
                pending, sent = pending[wrote:], sent + wrote
            except BlockingIOError:
                time.sleep(0.001)
            except OSError:  # the server hung up on us
                break
        sock.setblocking(True)
        sock.settimeout(10)
        if sent >= TOTAL and not answer:
            sock.sendall(b"0\r\n\r\n")  # all of it was read: end the body, so the answer comes
        try:
            while b"\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except OSError:
            pass
    status_line = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    assert status_line.startswith("HTTP/1.1 "), f"no answer (sent {sent} bytes): {status_line!r}"
    return int(status_line.split()[1]), sent


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch, slack_services: Services, slack_settings: Settings,
         clock: FakeClock) -> Iterator[LiveServer]:
    monkeypatch.setenv("OPSLOOP_TOKEN_PROMETHEUS", AM_TOKEN)
    monkeypatch.setenv("OPSLOOP_TOKEN_SIGNALS", SIGNALS_TOKEN)
    dispatcher = wire_slack(slack_services, idle=0.05)
    app = create_http_app(slack_services, slack_settings, dispatcher=dispatcher)
    server = LiveServer(app, dispatcher=dispatcher, clock=clock, secret="unused").start()
    yield server
    server.stop()


ROUTES = {
    "slack unsigned": ("/slack/events", {}),
    "slack signed-looking": ("/slack/events", {"X-Slack-Request-Timestamp": str(int(time.time())),
                                               "X-Slack-Signature": "v0=" + "0" * 64}),
    "alertmanager with token": ("/hooks/alertmanager", {"Authorization": f"Bearer {AM_TOKEN}"}),
    "alertmanager without": ("/hooks/alertmanager", {}),
    "events v2": ("/hooks/events/v2", {}),
    "signals with token": ("/hooks/signals", {"Authorization": f"Bearer {SIGNALS_TOKEN}"}),
    "signals without": ("/hooks/signals", {}),
}


@pytest.mark.slow
@SQLITE_ONLY
@pytest.mark.parametrize("route", list(ROUTES.values()), ids=list(ROUTES))
def test_a_300_mib_chunked_body_is_refused_while_it_streams_and_memory_stays_flat(
    route: tuple[str, dict[str, str]], live: LiveServer
) -> None:
    path, headers = route
    assert live.client is not None
    port = live.client.base_url.port
    assert port is not None
    peak = Peak()
    status, sent = stream_huge(port, path, headers)
    growth = peak.stop()
    assert status in (401, 413)
    assert sent < TOTAL // 2, f"the server read on to {sent} bytes before answering"
    assert growth < 50 * 1024 * 1024, f"memory grew by {growth / 2**20:.0f} MiB"
