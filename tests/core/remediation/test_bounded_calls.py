"""Issue 15: remediation calls are bounded, through the real executor.

`timeout` is the wall-clock budget of an attempt, answer included (a local server that drips its
answer is cut at it); answers are read up to `actions.max_response`; one slow call does not hold
up another work item's; and an input that makes the request impossible (a URL that cannot be read,
a disguised loopback or metadata address, a header that is not text) fails its step with the
reason instead of leaving the executor retrying forever.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml

from opsloop.core import Core
from opsloop.table import Sources, assemble
from tests.core.remediation.conftest import SECRET, STARTER, FakeResolver, call
from tests.support import PATIENCE, FakeClock, QuietHandler, local_server, wait_until

LOOSE = """schema_version: 1
id: loose
version: 1.0.0
title: Call whatever the input says
owners: [U0SRE1]
inputs:
  target: {type: string, required: true}
  header: {type: string, default: "plain"}
steps:
  - id: call
    type: http
    request:
      method: POST
      url: "http://{{ inputs.target }}"
      headers: {Authorization: "Bearer {{ secrets.OPS_API_TOKEN }}", X-Note: "{{ inputs.header }}"}
      json: {ok: true}
    timeout: 1s
    retry: {attempts: 1}
"""

ODD_HOSTS = ["ops-api.internal", "::7f00:1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "0177.0.0.1",
             "0x7f.1", "2130706433", "fd00:ec2::254", "nat64.internal", "compat.internal", "6to4.internal",
             "drip.internal"]


@pytest.fixture
def allow_loopback(request: pytest.FixtureRequest) -> bool:
    """The drip server is local, so loopback is allowed unless a test says otherwise."""
    return bool(getattr(request, "param", True))


@pytest.fixture
def loose_dir(rem_dir: tuple[Path, Path], allow_loopback: bool) -> tuple[Path, Path]:
    (rem_dir[0] / "loose.yaml").write_text(LOOSE)
    policy = yaml.safe_load(rem_dir[1].read_text())
    policy["actions"]["allow_hosts"] += ODD_HOSTS
    policy["actions"]["allow_loopback"] = allow_loopback
    rem_dir[1].write_text(yaml.safe_dump(policy))
    return rem_dir


@pytest.fixture
def bounded(db_url: str, loose_dir: tuple[Path, Path], clock: FakeClock,
            resolver: FakeResolver) -> Iterator[Core]:
    """Core as `opsloop serve` builds them (its own HTTP client), on a resolver the test controls."""
    resolver.names.update({"nat64.internal": ["64:ff9b::a9fe:a9fe"], "compat.internal": ["::7f00:1"],
                           "6to4.internal": ["2002:a9fe:a9fe::1"], "drip.internal": ["127.0.0.1"]})
    sources = Sources(database_url=db_url, config=loose_dir[1], runbooks_dir=loose_dir[0])
    built = assemble(sources, clock=clock, resolver=resolver, environ={"OPS_API_TOKEN": SECRET})
    yield built
    built.db.dispose()


def run_loose(services: Core, target: str, header: str = "plain") -> str:
    ref = services.workitems.declare(actor=STARTER, title="Probe").ref
    words = f"run loose {ref} {shlex.quote('target=' + target)} {shlex.quote('header=' + header)}"
    services.commands.handle("/runbook", words, actor=STARTER)
    return ref


@pytest.mark.parametrize("allow_loopback", [False], indirect=True)
@pytest.mark.parametrize(("target", "why"), [
    ("ops-api.internal/a\nb", "the URL cannot be read"),
    ("fd00:ec2::254/latest", "the URL cannot be read"),
    ("ops-api.internal:99999/x", "port 99999 is out of range"),
    ("0177.0.0.1/x", "cannot be read"),
    ("0x7f.1/x", "not a plain IPv4 address"),
    ("2130706433/x", "not a plain IPv4 address"),
    ("[::7f00:1]/x", "carries the IPv4 address 127.0.0.1"),
    ("[64:ff9b::a9fe:a9fe]/x", "carries the IPv4 address 169.254.169.254"),
    ("[2002:7f00:1::]/x", "carries the IPv4 address 127.0.0.1"),
    ("nat64.internal/x", "carries the IPv4 address 169.254.169.254"),
    ("compat.internal/x", "carries the IPv4 address 127.0.0.1"),
    ("6to4.internal/x", "carries the IPv4 address 169.254.169.254"),
])
def test_an_impossible_or_disguised_url_fails_its_step_with_the_reason(
        bounded: Core, target: str, why: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Any] = []
    monkeypatch.setattr(bounded.remediation.executor.client, "send", lambda *a, **k: sent.append(a))
    run_loose(bounded, target)
    bounded.remediation.work()  # must not raise, and must settle the call
    failed = call(bounded, "call")
    assert failed.state == "failed" and why in (failed.error or ""), failed.error
    assert bounded.remediation.work() == 0  # nothing left to retry
    assert sent == []


def test_a_header_that_is_not_text_fails_its_step_with_the_reason(bounded: Core) -> None:
    with respx.mock(assert_all_mocked=True) as api:
        run_loose(bounded, "ops-api.internal/x", header="caf\u00e9 \u27e6")
        bounded.remediation.work()
        assert api.calls.call_count == 0
    failed = call(bounded, "call")
    assert failed.state == "failed" and "the request cannot be made" in (failed.error or "")


class Drip:
    """A local API that answers one byte at a time, `every` seconds apart, for `total` bytes."""

    def __init__(self, *, total: int = 300, every: float = 0.1, headers_too: bool = False) -> None:
        self.sent = 0
        self.finished = threading.Event()
        drip = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.read_body()
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n".encode()
                try:
                    if headers_too:
                        for byte in head:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(every)
                    else:
                        self.wfile.write(head)
                    for _ in range(total):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        drip.sent += 1
                        time.sleep(every)
                except OSError:
                    pass  # the client hung up: what the test wants
                drip.finished.set()

        self.server = local_server(Handler)
        self.port = self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_an_answer_dripped_a_byte_at_a_time_is_cut_at_the_timeout(bounded: Core, headers_too: bool) -> None:
    drip = Drip(headers_too=headers_too)
    try:
        run_loose(bounded, f"drip.internal:{drip.port}/drip")
        bounded.remediation.work()
        cut = call(bounded, "call")
        assert cut.state == "unknown" and "timed out after 1s" in (cut.error or ""), cut.error
        assert not drip.finished.is_set() or drip.sent < 300  # the executor left while it still dripped
    finally:
        drip.stop()


def test_an_answer_larger_than_max_response_fails_the_step_saying_so(bounded: Core) -> None:
    with respx.mock(assert_all_mocked=True) as api:
        api.post("http://10.20.30.40/x").mock(return_value=httpx.Response(200, content=b"{" * (2 * 1024 * 1024)))
        run_loose(bounded, "ops-api.internal/x")
        bounded.remediation.work()
    failed = call(bounded, "call")
    assert failed.state == "failed" and "larger than 1048576 bytes (actions.max_response)" in (failed.error or "")


def test_one_slow_call_does_not_hold_up_another_work_items_call(bounded: Core) -> None:
    release, slow_returned = threading.Event(), threading.Event()

    def slow(request: httpx.Request) -> httpx.Response:
        release.wait(PATIENCE)
        slow_returned.set()
        return httpx.Response(200)

    with respx.mock(assert_all_mocked=True) as api:
        api.post("http://10.20.30.40/slow").mock(side_effect=slow)
        fast = api.post("http://10.20.30.40/fast").mock(return_value=httpx.Response(200))
        run_loose(bounded, "ops-api.internal/slow")
        run_loose(bounded, "ops-api.internal/fast")
        worker = threading.Thread(target=bounded.remediation.work)
        worker.start()
        try:
            # the newest call, INC-2's fast one, succeeds while the slow one is still held (ordering)
            wait_until(lambda: call(bounded, "call").state == "succeeded", what="the fast call")
            assert fast.call_count == 1 and not slow_returned.is_set()  # the slow one still hangs
        finally:
            release.set()
            worker.join(PATIENCE)
