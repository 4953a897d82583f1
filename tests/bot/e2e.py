"""End-to-end helpers: `opsloop serve` assembled as `cmd_serve` does (Slack wiring, outbound senders,
the scheduler), on a policy of the test's own, against the mock Slack, with the fake clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import col, func, select

from bot.bootstrap import Services, bootstrap
from bot.http import create_http_app
from bot.scheduler import SchedulerWorker
from bot.senders import outbound_senders
from bot.settings import Settings
from bot.slack.wiring import wire_slack
from opsloop.models import OutboxMessage
from opsloop.outbox import PENDING, SENT, Dispatcher
from opsloop.remediation.models import RemediationCall
from tests.bot.conftest import SIGNING_SECRET
from tests.bot.live_server import LiveServer
from tests.bot.mock_slack import Call, MockSlack
from tests.support import PATIENCE, FakeClock, wait_until

SLACK_POLICY = Path(__file__).with_name("slack_policy.yml")


def slack_policy() -> dict[str, Any]:
    """tests/bot/slack_policy.yml as data, its account catalog made absolute (the copy lives elsewhere)."""
    policy: dict[str, Any] = yaml.safe_load(SLACK_POLICY.read_text())
    policy["accounts"] = str((SLACK_POLICY.parent / policy["accounts"]).resolve())
    return policy


def write_policy(directory: Path, policy: dict[str, Any]) -> Path:
    path = directory / "opsloop.yml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


@contextmanager
def serve(settings: Settings, clock: FakeClock, *, scheduler: bool = True,
          **bootstrap_args: Any) -> Iterator[tuple[Services, LiveServer]]:
    """What `opsloop serve` runs (see bot.cli.cmd_serve), on uvicorn in a thread, sweeping every
    `settings.sweep_interval` real seconds while the test moves the fake clock (`scheduler=False`:
    nothing is swept unless the test sweeps; for tests of the HTTP surface alone)."""
    services = bootstrap(settings, clock=clock, **bootstrap_args)
    try:
        dispatcher = wire_slack(services, idle=0.05, extra_senders=outbound_senders(settings))
        if scheduler:
            services.background.append(SchedulerWorker(services))
        app = create_http_app(services, settings, dispatcher=dispatcher)
        live = LiveServer(app, dispatcher=dispatcher, clock=clock, secret=SIGNING_SECRET).start()
        try:
            yield services, live
        finally:
            live.stop()
    finally:
        services.db.dispose()


def wait_for(done: Callable[[], object], *, timeout: float = PATIENCE, what: str = "a condition") -> None:
    """Poll in real time (the fake clock stands still) until `done()` is truthy, or fail."""
    wait_until(done, timeout=timeout, what=what)


def sweeps_pass(services: Services, count: int = 2, *, timeout: float = PATIENCE) -> None:
    """Wait until the scheduler has swept `count` more times (so anything due has had its chance)."""
    start = services.sweeper.stats.sweeps
    wait_for(lambda: services.sweeper.stats.sweeps >= start + count, timeout=timeout, what="sweeps")


def held_back(services: Services, dispatcher: Dispatcher) -> bool:
    """The outbox has caught up with the fake clock and only time can move it on: nothing it could
    deliver now is waiting or in flight, and some message waits for its lane's pace or its backoff."""
    now = services.clock.now()
    with services.db.transaction() as session:
        pending = session.exec(select(OutboxMessage).where(
            OutboxMessage.status == PENDING,
            col(OutboxMessage.transport).in_(list(dispatcher.senders)))
            .order_by(col(OutboxMessage.id))).all()
        heads = {m.lane: m for m in reversed(pending)}.values()  # the oldest pending message per lane
        last_sent = dict(session.exec(  # type: ignore[arg-type]
            select(OutboxMessage.lane, func.max(OutboxMessage.sent_at))
            .where(col(OutboxMessage.lane).in_({m.lane for m in heads}))
            .group_by(OutboxMessage.lane)).all())
    for message in heads:
        pace = dispatcher.pace.get(message.transport)
        sent = last_sent.get(message.lane)
        paced = pace is not None and sent is not None and sent > now - pace
        if message.next_attempt_at <= now and not paced:
            return False  # deliverable now (or being delivered): the outbox has not caught up
    return bool(pending)


def pump(services: Services, server: LiveServer, done: Callable[[], object], *, limit: int = 30,
         what: str = "a condition") -> None:
    """Until `done()`: let the scheduler sweep and the outbox deliver, and move the fake clock on a
    second (each Slack channel takes a message a second) whenever only time holds the outbox back;
    at most `limit` fake seconds, and PATIENCE real ones. Moving the clock only once the outbox has
    caught up keeps a slow (loaded) machine from running out of fake time before the work is done."""
    moved = 0
    deadline = time.monotonic() + PATIENCE
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; {backlog(services)}")
        sweeps_pass(services, 1)
        if moved < limit and held_back(services, server.dispatcher):
            server.clock.advance(seconds=1)
            moved += 1
            server.dispatcher.wake()


def backlog(services: Services) -> str:
    """What is still in flight, for a failure message."""
    with services.db.transaction() as session:
        waiting = [(m.id, m.transport, m.lane, m.status, m.attempts, m.next_attempt_at, m.leased_until, m.last_error)
                   for m in session.exec(select(OutboxMessage).where(OutboxMessage.status != SENT))]
        calls = [(c.id, c.state) for c in session.exec(select(RemediationCall))]
    return f"now {services.clock.now()}; not sent {waiting}; remediation calls {calls}"


def sent_on(services: Services, lane: str) -> int:
    """How many outbox messages of `lane` were delivered (recorded as sent, with their time)."""
    with services.db.transaction() as session:
        return len(session.exec(select(OutboxMessage.id).where(OutboxMessage.lane == lane,
                                                               OutboxMessage.status == SENT)).all())


def fields(call: Call) -> dict[str, str]:
    """A posted message's section fields, `*Label*\\nvalue` read as {label: value}."""
    found = {}
    for block in call.params.get("blocks") or []:
        for field in block.get("fields", []):
            label, _, value = field["text"].partition("\n")
            found[label.strip("*")] = value
    return found


def buttons(call: Call) -> dict[str, tuple[str, str]]:
    """A message's buttons: label -> (action_id, value)."""
    return {e["text"]["text"]: (e["action_id"], e["value"])
            for b in call.params.get("blocks") or [] if b["type"] == "actions" for e in b["elements"]}


def posts(mock: MockSlack, channel: str | None = None) -> list[Call]:
    return [c for c in mock.ok_calls("chat.postMessage") if channel is None or c.params["channel"] == channel]


def texts(calls: list[Call]) -> list[str]:
    return [str(c.params.get("text")) for c in calls]


def responses(mock: MockSlack) -> list[str]:
    """What was said privately through response_url (commands' and buttons' answers)."""
    return [str(c.params.get("text")) for c in mock.all_calls() if c.method.startswith("respond/")]
