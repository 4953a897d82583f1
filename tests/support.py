"""Test helpers shared by tests/core and tests/bot."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from opsloop.messages import Message
from opsloop.models import OutboxMessage
from opsloop.outbox import Delivered, DeliveryError

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

# How long a test waits, in real time, for something that should happen "soon" (a server thread, the
# scheduler, the outbox). A bound against hanging forever, never a measure: on a loaded machine (two
# cores shared by many runs) a thread can sit unscheduled for seconds, so the bound is generous and a
# test passes as soon as its condition holds. No test asserts how long anything took.
PATIENCE = 120.0


def wait_until(done: Callable[[], object], *, timeout: float = PATIENCE, what: str = "a condition",
               poll: float = 0.02) -> None:
    """Poll in real time until `done()` is truthy, or fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: Any) -> datetime:
        self.current += timedelta(**kwargs)
        return self.current


class RecordingSender:
    """An outbox sender that records what it was given, and can be told to fail."""

    def __init__(self) -> None:
        self.sent: list[OutboxMessage] = []
        self.failures: list[Exception] = []  # raised, in order, before anything succeeds
        self.calls = 0

    def send(self, message: OutboxMessage, parent: OutboxMessage | None) -> Delivered:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        return Delivered(external_id=f"ts.{len(self.sent)}", external_target=message.target)

    def fail_next(self, times: int, reason: str = "unreachable", retry_after: float | None = None) -> None:
        self.failures += [DeliveryError(reason, retry_after=retry_after) for _ in range(times)]

    def texts(self) -> list[str]:
        return [Message.from_json(m.payload["message"]).text for m in self.sent]


def at_once(calls: Sequence[Callable[[], T]], timeout: float = 30) -> list[T]:
    """Run the calls in threads released together (replicas acting at the same moment); their results."""
    ready = threading.Barrier(len(calls))
    results: list[T] = []

    def run(call: Callable[[], T]) -> None:
        ready.wait()
        results.append(call())

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results


class QuietHandler(BaseHTTPRequestHandler):
    """A keep-alive request handler for tests' local far sides, without access logs."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


def local_server(handler: type[BaseHTTPRequestHandler], *, tls: ssl.SSLContext | None = None
                 ) -> ThreadingHTTPServer:
    """`handler` served on 127.0.0.1, an ephemeral port, in a daemon thread (stop: shutdown, close);
    over TLS with `tls` (a server context)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
