"""The core in a process of its own (`opsloop serve`): acknowledgements never wait for its GIL.

One child process, forked right after the bootstrap (before any thread starts,
so it shares the parent's memory), runs everything that is the core's work:

    the calls the adapters hand over (`run`: a command, a press, a submission,
    a status page ...), on a few threads of its own;
    the inbox worker that turns accepted webhooks into incidents;
    the background workers (`prepare` sets them up there: the outbox's transport
    workers with the Slack sender, the scheduler).

The parent keeps the edge: verifying, acknowledging, the grammar-only help,
storing accepted webhooks, /metrics and /readyz. Under a burst of declares the
core's threads hold *their* GIL, not the event loop's, and the core process runs
at a lower CPU priority (`CORE_NICENESS`), so it never takes the edge's CPU either.

They talk over one pipe. The parent sends a call as (service, method, args,
kwargs): `fn` is a bound method of a service on `Services` (e.g.
`services.commands.handle`), and the child runs the same method of its own
copy. Results and errors come back pickled (any exception as its own class,
with its attributes; anything but an `OpsloopError` with the core's traceback
as a note). The parent also sends a wake after each stored batch of webhooks,
and keeps where the child reads it (shared memory) whether webhooks wait to be
stored and when the last came in: while a storm is being stored, the inbox
worker lets it go first, as in one process.

Stopping (`stop`) happens after the parent drained (`drain`: every call it
acknowledged has been answered): the child finishes what it runs, processes
what is left in the inbox, stops its workers and exits. SIGINT and SIGTERM do
not stop it (the parent, which gets them too, says when), and it stops the same
way if the parent goes away. If it dies, the parent logs it, fails what was outstanding and /readyz
says the core is unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import math
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future as Pending
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, ParamSpec, TypeVar

from bot.bootstrap import Services
from bot.core_pool import DEFAULT_THREADS, DRAIN_TIMEOUT, SMOOTHING
from bot.hooks import STORM_QUIET, InboxWorker
from opsloop.errors import OpsloopError
from opsloop.intake.inbox import Inbox
from opsloop.outbox import DeliveryStats, Dispatcher

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)

CALL, WAKE, STATS, STOP = "call", "wake", "stats", "stop"  # parent -> child
DONE, COUNTS, CREATED = "done", "counts", "created"  # child -> parent
# the core process yields the CPU to the edge: on a busy machine (a burst of declares keeps the core
# busy for seconds) an acknowledgement then waits for neither the core's GIL nor its CPU time; the
# core gets whatever the edge leaves, which under a burst is nearly all of it
CORE_NICENESS = 10
STOP_GRACE = 45.0  # seconds, beyond the drain, for the inbox and the workers to stop


class CoreUnavailable(RuntimeError):
    """The core process is not running: the call was not made."""


class CoreFailed(RuntimeError):
    """An error of the core that could not travel as itself (its text and traceback do)."""


Prepare = Callable[[Services], Dispatcher | None]


@dataclass
class _Call:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    submitted: float


class ProcessCorePool:
    """The pool the adapters use (`run`, `expected_wait`, `pending`, `drain`, as `CorePool`), whose
    threads are in the core process. `prepare(services)` runs in that process before it serves:
    it adds the background workers there and returns the outbox dispatcher (for /metrics)."""

    def __init__(self, services: Services, prepare: Prepare, *, threads: int = DEFAULT_THREADS) -> None:
        self.services = services
        self.prepare = prepare
        self.threads = threads
        self.intake_created: Callable[[int], None] = lambda _count: None  # incidents the inbox opened
        self._context = multiprocessing.get_context("fork")
        # time.monotonic() of the last webhook at the edge, +inf while some wait to be stored
        self._last_webhook = self._context.Value("d", -math.inf, lock=False)
        self._names = {id(getattr(services, f.name)): f.name for f in fields(services)}
        self._conn: Connection | None = None
        self._process: BaseProcess | None = None
        self._reader: threading.Thread | None = None
        self._sending = threading.Lock()
        self._changed = threading.Condition()
        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}  # sent, not answered; oldest first
        self._asked: dict[int, Pending[DeliveryStats | None]] = {}
        self._pending = 0
        self._typical = 0.0  # seconds a call took in the core lately (exponentially weighted)
        self._last_done = 0.0
        self._stopping = False

    # ---------------------------------------------------------------- the process

    def start(self) -> None:
        """Fork the core process. Call it before any thread starts in this process (a fork copies
        only the calling thread; a lock another thread held stays held in the child forever)."""
        ours, theirs = self._context.Pipe()
        gc.collect()
        gc.freeze()  # what is built so far stays shared: the collector never writes to its pages
        # not daemonic: it starts processes of its own (the digest's chart is drawn in one)
        process = self._context.Process(target=_serve, name="opsloop-core",
                                        args=(theirs, ours, self.services, self.prepare, self.threads,
                                              self._last_webhook))
        process.start()
        theirs.close()
        self._conn, self._process = ours, process
        self._reader = threading.Thread(target=self._read, name="opsloop-core-answers", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive() and not self._stopping

    @property
    def problem(self) -> str | None:
        """Why the core cannot take calls, or None."""
        if self._process is None:
            return "the core process was not started"
        if not self._process.is_alive():
            return f"the core process exited (code {self._process.exitcode})"
        return "the core process is stopping" if self._stopping else None

    @property
    def exited(self) -> str | None:
        """How the core process ended when nobody asked it to (None: running, stopping or not started)."""
        process = self._process
        if process is None or self._stopping or process.is_alive():
            return None
        return f"the core process exited (code {process.exitcode})"

    def stop(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Tell the core process to finish and stop (after `drain`), and wait for it."""
        process = self._process
        if process is None or self._stopping:
            return
        self._stopping = True
        with contextlib.suppress(OSError):  # already gone
            self._send((STOP,))
        process.join(timeout + STOP_GRACE)
        if process.is_alive():
            log.error("the core process did not stop within %ss; killing it", timeout + STOP_GRACE)
            process.kill()
            process.join(5)
        if self._reader is not None:
            self._reader.join(5)
        if self._conn is not None:
            self._conn.close()

    # ---------------------------------------------------------------- the pool

    @property
    def pending(self) -> int:
        return self._pending

    def expected_wait(self) -> float:
        """As `CorePool.expected_wait`. The parent does not see when a call starts in the core; the
        oldest unanswered call has been running at least since it was sent, or since the last
        answer came (which freed a thread for it), whichever is later."""
        with self._changed:
            oldest = next(iter(self._calls.values()), None)
            pending = self._pending
            started = None if oldest is None else max(oldest.submitted, self._last_done)
        typical = self._typical if started is None else max(self._typical, time.perf_counter() - started)
        return math.ceil((pending + 1) / self.threads) * typical

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        """`fn(*args, **kwargs)` in the core process; `fn` is a bound method of a service of
        `Services` (its arguments and result must pickle)."""
        service = getattr(fn, "__self__", None)
        name = self._names.get(id(service)) if service is not None else None
        if name is None:
            raise TypeError(f"{fn!r} is not a method of a service of Services")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._changed:
            call = next(self._ids)
            self._calls[call] = _Call(loop, future, time.perf_counter())
            self._pending += 1
        try:
            if not self.alive:
                raise CoreUnavailable(self.problem or "the core process is not running")
            self._send((CALL, call, name, fn.__name__, args, kwargs))
        except Exception as error:  # arguments that do not pickle, a core that went away
            self._answered(call, False, error, 0.0)
        return future

    def drain(self, timeout: float | None = DRAIN_TIMEOUT) -> bool:
        """Wait until every call sent so far has been answered (False: `timeout` ran out first)."""
        with self._changed:
            drained = self._changed.wait_for(lambda: self._pending == 0, timeout)
        if not drained:
            log.warning("stopping with %d core calls unanswered after %ss", self._pending, timeout)
        return drained

    # ---------------------------------------------------------------- the edge's signals

    def storm(self, since: float) -> None:
        """When webhooks were last seen at the edge (+inf: some wait to be stored now): within
        `STORM_QUIET` of it, the inbox worker lets the storm go first (`Batcher.busy`)."""
        self._last_webhook.value = since

    def wake_inbox(self) -> None:
        """Webhooks were stored: the inbox worker processes them (when the storm lets it)."""
        with contextlib.suppress(OSError):  # a core that is gone processes them when it next starts
            self._send((WAKE,))

    def delivery_stats(self, timeout: float = 5.0) -> DeliveryStats | None:
        """The outbox dispatcher's counters in the core process (None: no dispatcher, or no answer)."""
        asked: Pending[DeliveryStats | None] = Pending()
        with self._changed:
            number = next(self._ids)
            self._asked[number] = asked
        try:
            self._send((STATS, number))
            return asked.result(timeout)
        except Exception:
            return None
        finally:
            with self._changed:
                self._asked.pop(number, None)

    # ---------------------------------------------------------------- plumbing

    def _send(self, message: tuple[Any, ...]) -> None:
        if self._conn is None:
            raise CoreUnavailable("the core process was not started")
        with self._sending:
            self._conn.send(message)

    def _read(self) -> None:
        assert self._conn is not None
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # an answer that does not unpickle: the core checks errors, so a bug
                log.exception("an answer of the core process could not be read")
                continue
            kind = message[0]
            if kind == DONE:
                _, call, ok, value, took = message
                self._answered(call, ok, value if ok else _rebuilt(value), took)
            elif kind == COUNTS:
                with self._changed:
                    asked = self._asked.get(message[1])
                if asked is not None and not asked.done():
                    asked.set_result(message[2])
            elif kind == CREATED:
                self.intake_created(message[1])
        self._gone()

    def _answered(self, call: int, ok: bool, value: Any, took: float) -> None:
        with self._changed:
            waiting = self._calls.pop(call, None)
            if waiting is None:
                return
            self._pending -= 1
            if took:
                self._typical += SMOOTHING * (took - self._typical)
                self._last_done = time.perf_counter()
            self._changed.notify_all()
        with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits for the answer
            waiting.loop.call_soon_threadsafe(_settle, waiting.future, ok, value)

    def _gone(self) -> None:
        """The pipe closed: the core process stopped (asked to, or died). Nothing outstanding will
        be answered: each call fails, so nothing waits for it."""
        if not self._stopping:  # (when stopping, `stop` waits for the process)
            if self._process is not None:
                self._process.join(5)
            code = self._process.exitcode if self._process is not None else None
            log.error("the core process exited unexpectedly (code %s): commands, presses and webhook "
                      "processing stop until opsloop serve is restarted", code)
        with self._changed:
            outstanding = list(self._calls)
            for asked in self._asked.values():
                if not asked.done():
                    asked.set_result(None)
        for call in outstanding:
            self._answered(call, False, CoreUnavailable("the core process stopped"), 0.0)


def _rebuilt(raised: _Raised) -> Exception:
    try:
        return raised.rebuilt()
    except Exception as error:  # a class whose __new__ wants more: its text still comes back
        return CoreFailed(f"{raised.kind.__name__}: {raised.args} (not rebuilt: {error})")


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return  # cancelled: whoever asked went away
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


# -------------------------------------------------------------------- the child


def _serve(conn: Connection, parents: Connection, services: Services, prepare: Prepare, threads: int,
           last_webhook: Any) -> None:
    """The core process: run calls and the workers until told to stop (or the parent is gone)."""
    parents.close()  # the parent's end: without this copy closed, the parent's exit is never seen
    # the parent stops it, after draining. Caught, not ignored: an ignored signal stays ignored in
    # the processes it starts (the digest's chart is drawn in one), which then cannot be terminated
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _left_to_the_parent)
    os.nice(CORE_NICENESS)
    services.db.engine.dispose(close=False)  # the parent's connections stay the parent's
    sending = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with sending:
            conn.send(message)

    def created(count: int) -> None:
        if count:
            send((CREATED, count))

    dispatcher = prepare(services)
    inbox = Inbox(services.db, services.intake, services.clock,
                  processed=lambda outcomes: created(sum(len(o.created) for o in outcomes)))
    worker = InboxWorker(inbox, busy=lambda: time.monotonic() - last_webhook.value < STORM_QUIET)
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="opsloop-core")
    started = []
    try:
        worker.start()  # what a previous run accepted and did not process goes first
        for background in services.background:
            background.start()
            started.append(background)
        while True:
            try:
                message = conn.recv()
            except EOFError:
                log.warning("the parent of the core process went away; stopping")
                break
            kind = message[0]
            if kind == CALL:
                executor.submit(_call, send, services, *message[1:])
            elif kind == WAKE:
                worker.wake()
            elif kind == STATS:
                send((COUNTS, message[1], dispatcher.stats if dispatcher is not None else None))
            elif kind == STOP:
                break
    finally:
        executor.shutdown(wait=True)  # every call the parent acknowledged is carried out
        worker.stop()  # what was accepted is processed, its messages queued, before the workers stop
        for background in reversed(started):
            background.stop()
        conn.close()


def _left_to_the_parent(signum: int, frame: object) -> None:
    """SIGINT or SIGTERM reached the core process (a terminal's Ctrl-C, a process group's kill): the
    parent got it too, and stops the core once it has drained."""


def _call(send: Callable[[tuple[Any, ...]], None], services: Services, call: int, name: str, method: str,
          args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    started = time.perf_counter()
    try:
        value = getattr(getattr(services, name), method)(*args, **kwargs)
    except Exception as error:
        answer: tuple[Any, ...] = (DONE, call, False, _portable(error), time.perf_counter() - started)
    else:
        answer = (DONE, call, True, value, time.perf_counter() - started)
    try:
        send(answer)
    except Exception as error:  # a result that does not pickle: a bug, told as one
        log.exception("the answer to %s.%s could not be sent", name, method)
        send((DONE, call, False, _portable(error), answer[-1]))


@dataclass(frozen=True)
class _Raised:
    """An exception as it crosses the pipe: its class, `args` and attributes. It is rebuilt without
    calling its `__init__`, whose parameters need not be its `args` (`SignalError(message,
    field=...)` has args `("field: message",)`): pickling the exception itself would call it."""

    kind: type[Exception]
    args: tuple[Any, ...]
    state: dict[str, Any]

    def rebuilt(self) -> Exception:
        error = self.kind.__new__(self.kind, *self.args)
        error.args = self.args
        error.__dict__.update(self.state)
        return error


def _portable(error: Exception) -> _Raised:
    """`error` as it can cross the pipe, or `CoreFailed` with its text when its class or attributes
    do not pickle. Anything but an `OpsloopError` is a bug: it carries the core's traceback as a note."""
    if not isinstance(error, OpsloopError):
        error.add_note("in the core process:\n" + "".join(traceback.format_exception(error)).rstrip())
    raised = _Raised(type(error), error.args, dict(vars(error)))
    try:
        pickle.dumps(raised)
    except Exception:
        failed = CoreFailed(f"{type(error).__name__}: {error}")
        failed.__dict__.update({"__notes__": list(getattr(error, "__notes__", []))})
        return _Raised(CoreFailed, failed.args, dict(vars(failed)))
    return raised
