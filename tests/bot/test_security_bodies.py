"""Issue 15: every route stops reading a body at its limit while it streams, through the real server.

A client streams a 300 MiB chunked body (no Content-Length) to each route family (Slack, Alertmanager,
Events v2 and its enqueue and change routes, signals, heartbeats), signed or not, with a token or not;
it must be answered 413 or 401 long before the end, and the server's memory must stay flat. The
server runs in this process, so this process's resident memory is what is watched, and what the app
read is counted where uvicorn hands it the body: at most the 1 MiB limit and one more piece (a
refusal for a wrong token reads nothing), so the client stops after a few MiB, not 300.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.bootstrap import bootstrap
from bot.edge import MAX_BODY
from bot.http import create_http_app
from bot.settings import Settings
from bot.slack.wiring import wire_slack
from tests.bot.e2e import slack_policy, write_policy
from tests.bot.live_server import LiveServer
from tests.support import FakeClock

TOTAL = 300 * 1024 * 1024
CHUNK = 64 * 1024
AM_TOKEN, SIGNALS_TOKEN, BEATS_TOKEN = "am-secret-token", "signals-secret-token", "beats-secret-token"
PIECE = 256 * 1024  # the most uvicorn hands the app at once (asyncio reads the socket 256 KiB at a time)
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


class Reads:
    """Counts the body bytes the app took from uvicorn (`receive`), per request: what the server read."""

    def __init__(self) -> None:
        self.read = 0

    def around(self, inner: ASGIApp) -> ASGIApp:
        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            async def reading() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    self.read += len(message.get("body", b""))
                return message

            await inner(scope, reading, send)

        return counted


@pytest.fixture
def reads() -> Reads:
    return Reads()


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch, slack_settings: Settings, clock: FakeClock, tmp_path: Path,
         reads: Reads) -> Iterator[LiveServer]:
    for name, value in {"OPSLOOP_TOKEN_PROMETHEUS": AM_TOKEN, "OPSLOOP_TOKEN_SIGNALS": SIGNALS_TOKEN,
                        "OPSLOOP_TOKEN_BEATS": BEATS_TOKEN}.items():
        monkeypatch.setenv(name, value)
    policy = slack_policy()
    policy["integrations"].append({"name": "beats", "kind": "heartbeat", "token_env": "OPSLOOP_TOKEN_BEATS"})
    policy["heartbeats"] = {"queue-worker": {"every": "5m", "grace": "1m"}}
    settings = slack_settings.model_copy(update={"config": write_policy(tmp_path, policy)})
    services = bootstrap(settings, clock=clock)
    dispatcher = wire_slack(services, idle=0.05)
    app: Starlette = create_http_app(services, settings, dispatcher=dispatcher)
    app.add_middleware(reads.around)  # type: ignore[arg-type]  # outermost: sees what uvicorn hands over
    server = LiveServer(app, dispatcher=dispatcher, clock=clock, secret="unused").start()
    yield server
    server.stop()
    services.db.dispose()


EVERYTHING = MAX_BODY + PIECE  # read past the limit by the piece that went over it, and no further
NOTHING = 0  # refused on its headers: not a byte of the body taken
ROUTES = {
    "slack unsigned": ("/slack/events", {}, 401, NOTHING),
    # a fresh timestamp (filled in when the test runs: one taken at collection goes stale in a long
    # run) and a signature that can only be checked against the whole body
    "slack signed-looking": ("/slack/events", {"X-Slack-Request-Timestamp": "now",
                                               "X-Slack-Signature": "v0=" + "0" * 64}, 413, EVERYTHING),
    "alertmanager with token": ("/hooks/alertmanager", {"Authorization": f"Bearer {AM_TOKEN}"}, 413, EVERYTHING),
    "alertmanager without": ("/hooks/alertmanager", {}, 401, NOTHING),
    # Events v2: the routing key is in the body, so it is read to the limit before anything else
    "events v2": ("/hooks/events/v2", {}, 413, EVERYTHING),
    "events v2 enqueue": ("/hooks/events/v2/enqueue", {}, 413, EVERYTHING),
    "events v2 change": ("/hooks/events/v2/change/enqueue", {}, 413, EVERYTHING),
    "signals with token": ("/hooks/signals", {"Authorization": f"Bearer {SIGNALS_TOKEN}"}, 413, EVERYTHING),
    "signals without": ("/hooks/signals", {}, 401, NOTHING),
    "heartbeat with token": ("/hooks/heartbeat/queue-worker", {"Authorization": f"Bearer {BEATS_TOKEN}"}, 413,
                             EVERYTHING),
    "heartbeat without": ("/hooks/heartbeat/queue-worker", {}, 401, NOTHING),
}


@pytest.mark.slow
@SQLITE_ONLY
@pytest.mark.parametrize("route", list(ROUTES.values()), ids=list(ROUTES))
def test_a_300_mib_chunked_body_is_refused_while_it_streams_and_memory_stays_flat(
    route: tuple[str, dict[str, str], int, int], live: LiveServer, reads: Reads
) -> None:
    path, headers, refused, most = route
    headers = {name: str(int(time.time())) if value == "now" else value for name, value in headers.items()}
    assert live.client is not None
    port = live.client.base_url.port
    assert port is not None
    peak = Peak()
    status, sent = stream_huge(port, path, headers)
    growth = peak.stop()
    assert status == refused
    if most == NOTHING:
        assert reads.read == 0, f"the server read {reads.read} bytes of a body it refused on its headers"
    else:
        assert MAX_BODY < reads.read <= most, f"the server read {reads.read} bytes of the body"
    assert sent < 64 * 1024 * 1024, f"the client got {sent} bytes out before the answer"
    assert growth < 50 * 1024 * 1024, f"memory grew by {growth / 2**20:.0f} MiB"
