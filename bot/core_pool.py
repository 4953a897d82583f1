"""Where the async adapters (Slack listeners, webhooks) run the synchronous core.

The core is synchronous (SQLAlchemy sessions, one transaction per change), so
the event loop hands each call to a thread. A few threads, not asyncio's
default pool (up to 32 on big machines): under the GIL more threads do not run
Python faster, they only make the event loop wait longer for its turn, and an
acknowledgement waiting for the GIL is latency Slack sees. The pool also
predicts when a call submitted now would be done (`expected_wait`, from the
queue ahead of it and how long calls have taken lately): `bot.slack.commands`
only waits for an inline answer when it would come in time. /metrics and
/readyz stay on asyncio's default pool, so a backlog of core work never
hides the server's health.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_THREADS = 2  # waits on PostgreSQL overlap; more only contend for the GIL
DRAIN_TIMEOUT = 60.0  # seconds a stopping server waits for acknowledged work
SMOOTHING = 0.2  # weight of the newest call in the running mean of call durations


class Pool(Protocol):
    """What the adapters run the core on: `CorePool` (threads of this process) or
    `bot.core_process.ProcessCorePool` (threads of the core process, in `opsloop serve`)."""

    @property
    def pending(self) -> int: ...

    def expected_wait(self) -> float: ...

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]: ...

    def drain(self, timeout: float | None = DRAIN_TIMEOUT) -> bool: ...


class CorePool:
    def __init__(self, threads: int = DEFAULT_THREADS) -> None:
        self.threads = threads
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="opsloop-core")
        self._changed = threading.Condition()
        self._pending = 0  # submitted and not finished
        self._typical = 0.0  # seconds a call took lately (exponentially weighted)
        self._running: dict[int, float] = {}  # thread id -> when its current call started

    @property
    def pending(self) -> int:
        return self._pending

    def expected_wait(self) -> float:
        """Seconds until a call submitted now would be done, if it is like recent calls:
        the rounds of calls queued ahead of it on the threads, and its own. A call that
        has been running longer than usual (a lock wait, a slow resolver) raises the
        estimate: whatever holds it up likely holds up the next ones too."""
        with self._changed:
            started = min(self._running.values(), default=None)
            pending = self._pending
        typical = self._typical if started is None else max(self._typical, time.perf_counter() - started)
        return math.ceil((pending + 1) / self.threads) * typical

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        """`fn(*args, **kwargs)` in a core thread; await the future without blocking the loop.

        Counted as pending from this call on (not from the first await), so
        `expected_wait()` right after it already sees it."""
        with self._changed:
            self._pending += 1
        try:
            return asyncio.get_running_loop().run_in_executor(
                self._executor, functools.partial(self._call, fn, *args, **kwargs))
        except BaseException:
            self._done()
            raise

    def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        me, started = threading.get_ident(), time.perf_counter()
        with self._changed:
            self._running[me] = started
        try:
            return fn(*args, **kwargs)
        finally:  # counted down when the work ends, even if nobody awaits it any more
            self._done(me, time.perf_counter() - started)

    def _done(self, thread: int | None = None, took: float = 0.0) -> None:
        with self._changed:
            self._pending -= 1
            if thread is not None:
                del self._running[thread]
                self._typical += SMOOTHING * (took - self._typical)
            self._changed.notify_all()

    def drain(self, timeout: float | None = DRAIN_TIMEOUT) -> bool:
        """Wait until every call submitted so far has finished (False: `timeout` ran out first).

        Servers drain before they stop their workers: a command Slack was told
        we received is carried out, and its messages still reach the outbox worker."""
        with self._changed:
            drained = self._changed.wait_for(lambda: self._pending == 0, timeout)
        if not drained:
            log.warning("stopping with %d core calls unfinished after %ss", self._pending, timeout)
        return drained
