"""The core pool: what it counts as pending, and draining before a server stops."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bot.core_pool import CorePool
from tests.support import PATIENCE, wait_until


def test_a_call_counts_as_pending_from_submission_until_its_work_ends() -> None:
    pool = CorePool(threads=1)
    release = threading.Event()

    async def scenario() -> list[object]:
        first = pool.run(release.wait, 5)
        seen: list[object] = [pool.pending]  # counted before anything awaited it
        second = pool.run(lambda: "second")
        seen.append(pool.pending)
        release.set()
        seen += [await first, await second]
        return seen

    assert asyncio.run(scenario()) == [1, 2, True, "second"]
    assert pool.pending == 0


def test_the_expected_wait_counts_the_rounds_queued_ahead_at_the_recent_pace() -> None:
    pool = CorePool(threads=2)
    assert pool.expected_wait() == 0  # nothing known yet: worth waiting for

    async def calls(count: int, seconds: float) -> None:
        await asyncio.gather(*(pool.run(time.sleep, seconds) for _ in range(count)))

    asyncio.run(calls(12, 0.05))
    alone = pool.expected_wait()
    assert 0.04 < alone < 0.2  # about one call's time

    release = threading.Event()

    async def queue_up() -> None:
        for _ in range(5):
            pool.run(release.wait, 5)

    asyncio.run(queue_up())
    # 5 ahead on 2 threads: ours runs in the third round, each at least one recent call long
    assert pool.expected_wait() >= 3 * alone * 0.99
    wait_until(lambda: len(pool._running) == 2, what="both threads to be running a held call")
    since = time.perf_counter()  # both held calls started before this
    time.sleep(0.5)
    running = time.perf_counter() - since  # so each has run at least this long
    # the running calls have taken far longer than usual: the estimate follows them
    assert pool.expected_wait() >= 3 * running
    release.set()
    assert pool.drain(timeout=5)


def test_a_call_that_raises_is_counted_down_and_its_error_reaches_the_caller() -> None:
    pool = CorePool(threads=2)

    def broken() -> None:
        raise ValueError("no such incident")

    async def scenario() -> None:
        await pool.run(broken)

    with pytest.raises(ValueError, match="no such incident"):
        asyncio.run(scenario())
    assert pool.pending == 0


def test_drain_waits_for_work_nobody_awaits_any_more() -> None:
    pool = CorePool(threads=2)
    done: list[str] = []

    def slow() -> None:
        time.sleep(0.2)
        done.append("slow")

    async def submit_and_leave() -> None:
        pool.run(slow)  # acknowledged and handed over; the request that asked is long gone

    asyncio.run(submit_and_leave())
    assert pool.drain(timeout=5) is True
    assert done == ["slow"]


def test_drain_gives_up_after_its_timeout() -> None:
    pool = CorePool(threads=1)
    release = threading.Event()

    async def submit() -> None:
        pool.run(release.wait, 5)

    asyncio.run(submit())
    drained: list[bool] = []
    waiting = threading.Thread(target=lambda: drained.append(pool.drain(timeout=0.1)))
    waiting.start()
    waiting.join(timeout=PATIENCE)  # a drain that ignored its timeout would still be waiting here
    assert drained == [False] and release.is_set() is False
    release.set()
    assert pool.drain(timeout=5) is True
