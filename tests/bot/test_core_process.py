"""The core process of `opsloop serve` (bot.core_process): calls, errors, draining, the inbox.

Each test forks a real core process from the services the test built (as `cmd_serve` does) and
reaches it only through `ProcessCorePool`; the database (a file or PostgreSQL) is what both see.
"""

from __future__ import annotations

import asyncio
import json
import math
import pickle
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.bootstrap import Services
from bot.core_process import CoreUnavailable, ProcessCorePool
from bot.hooks import STORM_QUIET, Batcher
from opsloop.errors import NotFound, OpsloopError, UsageError
from opsloop.health.signals import SignalError
from opsloop.intake.inbox import ALERTMANAGER, Accepted, Inbox
from opsloop.messages import Reply
from opsloop.models import WorkItem
from tests.bot.test_hooks import am_payload
from tests.support import PATIENCE, wait_until

RESPONDER = "U0RESP1"  # a responder in the sample policy


@pytest.fixture
def core(services: Services) -> Iterator[ProcessCorePool]:
    pool = ProcessCorePool(services, lambda _services: None)  # no Slack: no outbox workers, no scheduler
    pool.start()
    yield pool
    pool.stop(timeout=PATIENCE)


def incidents(services: Services) -> list[str]:
    with services.db.snapshot() as session:
        return [item.title for item in session.exec(select(WorkItem).order_by(WorkItem.id))]


def test_a_command_is_carried_out_and_answered_by_the_core_process(services: Services,
                                                                    core: ProcessCorePool) -> None:
    async def declare() -> Reply:
        return await core.run(services.commands.handle, "/incident", 'declare "Checkout down" sev2',
                              actor=RESPONDER, channel="C0OPS")

    reply = asyncio.run(declare())
    assert "INC-1" in reply.text
    assert incidents(services) == ["Checkout down"]  # written by the core, seen here
    assert core.pending == 0 and core.expected_wait() > 0  # it has timed a call


def test_replies_with_messages_and_forms_come_back_whole(services: Services, core: ProcessCorePool) -> None:
    async def scenario() -> tuple[Reply, Reply]:
        await core.run(services.commands.handle, "/incident", 'declare "Disk full" sev3', actor=RESPONDER)
        account = await core.run(services.commands.handle, "/health", "acme", actor="U0CSM1")
        form = await core.run(services.commands.press, "notice.compose", "INC-1", actor=RESPONDER)
        return account, form

    account, form = asyncio.run(scenario())
    assert account.message is not None and account.message.fields and form.form is not None
    for reply in (account, form):  # what the core sent is what was made: frozen dataclasses, equal
        assert pickle.loads(pickle.dumps(reply)) == reply


def test_a_domain_error_comes_back_as_itself(services: Services, core: ProcessCorePool) -> None:
    async def acknowledge_nothing() -> Any:
        return await core.run(services.commands.handle, "/incident", "ack INC-404", actor=RESPONDER)

    async def unknown_command() -> Any:
        return await core.run(services.commands.handle, "/nope", "", actor=RESPONDER)

    async def bad_signal() -> Any:  # its __init__ takes (message, *, field): not its args
        return await core.run(services.health.ingest, [{"tenant": "globex", "kind": "nps", "value": 101,
                                                        "at": "2026-11-23T08:00:00Z"}], source="test")

    with pytest.raises(NotFound, match="INC-404"):
        asyncio.run(acknowledge_nothing())
    with pytest.raises(UsageError, match="unknown command /nope"):
        asyncio.run(unknown_command())
    with pytest.raises(SignalError) as raised:
        asyncio.run(bad_signal())
    assert raised.value.field == "[0].value" and "nps is -100..100" in str(raised.value)
    assert core.pending == 0


def test_a_bug_in_the_core_comes_back_with_the_core_s_traceback(services: Services,
                                                               core: ProcessCorePool) -> None:
    async def broken() -> Any:  # text that is not text: an error no domain rule raised
        return await core.run(services.commands.handle, "/incident", None, actor=RESPONDER)  # type: ignore[arg-type]

    with pytest.raises(Exception) as raised:
        asyncio.run(broken())
    assert not isinstance(raised.value, OpsloopError)
    assert any("in the core process:" in note and "Traceback" in note
               for note in getattr(raised.value, "__notes__", []))


def test_only_methods_of_the_services_are_sent(services: Services, core: ProcessCorePool) -> None:
    def declare_here(text: str) -> None:  # a function of this process: nothing the core has
        services.commands.handle("/incident", text, actor=RESPONDER)

    async def function() -> None:
        await core.run(declare_here, 'declare "x" sev3')

    async def builtin() -> None:
        await core.run(len, "abc")

    for scenario in (function, builtin):
        with pytest.raises(TypeError, match="not a method of a service"):
            asyncio.run(scenario())
    assert incidents(services) == [] and core.pending == 0


def test_drain_waits_until_every_call_sent_was_carried_out(services: Services, core: ProcessCorePool) -> None:
    async def submit_and_leave() -> None:  # acknowledged and handed over; nobody awaits the answers
        for n in range(6):
            core.run(services.commands.handle, "/incident", f'declare "burst {n}" sev3', actor=RESPONDER)

    asyncio.run(submit_and_leave())
    assert core.drain(timeout=PATIENCE) is True
    assert core.pending == 0
    assert sorted(incidents(services)) == [f"burst {n}" for n in range(6)]


def test_a_webhook_stored_here_is_processed_by_the_core_process(services: Services,
                                                                core: ProcessCorePool) -> None:
    opened: list[int] = []
    core.intake_created = opened.append
    Inbox(services.db, services.intake, services.clock).put(
        [Accepted("prometheus", ALERTMANAGER, json.dumps(am_payload("DiskFull", "fp1")))])
    core.wake_inbox()
    wait_until(lambda: len(incidents(services)) == 1, what="the core process to open the incident")
    wait_until(lambda: opened == [1], what="the parent to hear of the incident opened")


def test_stopping_finishes_the_inbox_and_later_calls_fail(services: Services, core: ProcessCorePool) -> None:
    Inbox(services.db, services.intake, services.clock).put(
        [Accepted("prometheus", ALERTMANAGER, json.dumps(am_payload("CpuHot", "fp2")))])
    core.storm(math.inf)  # webhooks wait to be stored: the worker lets them go first, and is not woken
    core.stop(timeout=PATIENCE)
    assert len(incidents(services)) == 1  # processed before the core process exited
    assert core.problem == "the core process exited (code 0)"

    async def too_late() -> Any:
        return await core.run(services.commands.handle, "/incident", "list", actor=RESPONDER)

    with pytest.raises(CoreUnavailable):
        asyncio.run(too_late())


def test_when_the_core_process_dies_its_calls_fail_and_it_is_reported(services: Services,
                                                                      core: ProcessCorePool) -> None:
    assert core.problem is None
    process = core._process
    assert process is not None
    process.kill()
    process.join(PATIENCE)
    wait_until(lambda: core.problem is not None and "exited" in core.problem, what="the death to be seen")

    async def after() -> Any:
        return await core.run(services.commands.handle, "/incident", "list", actor=RESPONDER)

    with pytest.raises(CoreUnavailable):
        asyncio.run(after())
    assert core.pending == 0


def _signals(pid: int, field: str) -> int:
    """A signal mask of /proc/PID/status (`SigIgn`, `SigCgt`): bit n-1 is signal n."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_the_core_process_catches_sigterm_rather_than_ignoring_it(core: ProcessCorePool) -> None:
    """An ignored signal stays ignored in every process the core starts: the digest's chart pool
    then could not terminate its worker, and its job, the scheduler and the stop hung forever."""
    assert core._process is not None and core._process.pid is not None
    pid = core._process.pid
    bits = {signum: 1 << (signum - 1) for signum in (signal.SIGTERM, signal.SIGINT)}
    wait_until(lambda: all(_signals(pid, "SigCgt") & bit for bit in bits.values()),
               what="the core process to catch SIGTERM and SIGINT")
    assert not any(_signals(pid, "SigIgn") & bit for bit in bits.values())


def test_the_batcher_says_a_storm_is_on_while_webhooks_wait_to_be_stored() -> None:
    """What the core process's inbox worker reads. While a batch is being stored the senders wait
    for their answers and nothing new comes in: the storm is still on (it once looked over after
    `STORM_QUIET`, and the worker's long transactions then slowed a long storm down fivefold)."""
    seen: list[float] = []
    release = threading.Event()
    batcher = Batcher(lambda _entries: release.wait(PATIENCE), storm=seen.append)

    async def scenario() -> bool:
        answer = asyncio.ensure_future(batcher.submit(Accepted("prometheus", ALERTMANAGER, "{}")))
        while batcher._storing == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(STORM_QUIET * 2)  # nothing new came in for longer than the quiet
        assert seen[-1] == math.inf
        release.set()
        stored = await answer
        await batcher.close()
        return stored

    before = time.monotonic()
    assert asyncio.run(scenario()) is True
    assert before <= seen[-1] <= time.monotonic()  # over: the last webhook came in then
