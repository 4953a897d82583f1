"""Webhook intake over HTTP: Prometheus Alertmanager and PagerDuty-compatible Events API v2.

    POST /hooks/alertmanager   Alertmanager's webhook (payload version 4); `Authorization: Bearer
                               <token>` names the integration (policy `integrations`, kind alertmanager)
    POST /hooks/events/v2/enqueue          Events API v2 under PagerDuty's paths, base `/hooks/events`
    POST /hooks/events/v2/change/enqueue   change events (deploys ...), shown with incidents of the service
    POST /hooks/events/v2                  Events API v2, the path SPEC gave first
                               (Events v2: the body's `routing_key` is the integration's key)

Refusals change nothing: a missing or wrong token is 401, a body over 1 MiB
is 413, malformed JSON is 400, and a payload of the wrong shape is 422
(Alertmanager) or 400 (Events v2, as PagerDuty answers) with the list of
fields at fault (bodies too deep, numbers too large, text with NUL or lone surrogates:
400 naming the field, `bot.edge.parse_json`). Accepted payloads are stored in the intake's inbox
(`opsloop.intake.inbox`) by `Batcher`: requests arriving together are committed in one transaction
(group commit), and each request is answered only after its batch committed, so an answer means
"stored" (Alertmanager: 200 `{"status": "ok", "accepted": <alerts>}`; Events v2: 202 with the
dedup key). `InboxWorker` then turns them into incidents, in the order they were accepted, exactly
once, letting webhooks waiting to be stored go first: a storm is not slowed by what it opens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.bootstrap import Services
from bot.edge import BadJSON, BodyIncomplete, BodyTooLarge, Tokens, bearer, parse_json, read_body, refuse
from opsloop.intake import inbox as kinds
from opsloop.intake.inbox import BATCH, Accepted, Inbox
from opsloop.intake.payloads import AlertmanagerWebhook, ChangeEvent, PayloadError, parse, parse_v2

log = logging.getLogger(__name__)
T = TypeVar("T")

EVENTS_V2 = ("/hooks/events/v2", "/hooks/events/v2/enqueue")
CHANGES = "/hooks/events/v2/change/enqueue"
HOOK_ROUTES = ("/hooks/alertmanager", *EVENTS_V2, CHANGES)
STORM_QUIET = 0.05  # seconds without a webhook after which a storm is over


class Batcher:
    """Group commit: webhooks that arrive while a batch is being stored (or within `window` of the
    first) are stored together in the next transaction, and each request is answered once its batch
    committed."""

    def __init__(self, store: Callable[[Sequence[Accepted]], None], *,
                 window: float = 0.0, max_batch: int = 500,
                 stored: Callable[[], None] = lambda: None,
                 storm: Callable[[float], None] = lambda _since: None) -> None:
        self.store = store
        # a thread of its own: a backlog of commands on the core's threads never delays a webhook
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsloop-intake")
        self.window = window
        self.max_batch = max_batch
        self.stored = stored  # after each commit (wakes the inbox worker)
        # told when webhooks were last seen as they change: +inf while some wait to be stored, else
        # when the last came in (`busy`, for an inbox worker in another process)
        self.storm = storm
        self._queue: asyncio.Queue[tuple[Accepted, asyncio.Future[bool]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._storing = 0
        self._last = -math.inf  # when a webhook last came in
        self.quiet = STORM_QUIET

    @property
    def busy(self) -> bool:
        """Webhooks are being stored, or were a moment ago (`quiet`): a storm is under way, and the
        inbox worker lets it go first."""
        return (self._storing > 0 or (self._queue is not None and not self._queue.empty())
                or time.monotonic() - self._last < self.quiet)

    async def submit(self, entry: Accepted) -> bool:
        """Store `entry` with the webhooks arriving with it; False: it could not be stored (the
        database is away), and nothing was."""
        self._last = time.monotonic()
        self.storm(math.inf)
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._run(self._queue))
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put((entry, future))
        return await future

    async def _run(self, queue: asyncio.Queue[tuple[Accepted, asyncio.Future[bool]]]) -> None:
        while True:
            batch = [await queue.get()]
            self._storing += 1
            try:
                await asyncio.sleep(self.window)  # let the requests arriving together join
                while not queue.empty() and len(batch) < self.max_batch:
                    batch.append(queue.get_nowait())
                await self._store(batch)
            finally:
                self._storing -= 1
            self.storm(self._last if queue.empty() else math.inf)
            self.stored()

    async def _store(self, batch: list[tuple[Accepted, asyncio.Future[bool]]]) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self.store,
                                                             [entry for entry, _ in batch])
        except Exception:
            log.exception("storing %d accepted webhooks failed", len(batch))
            stored = False
        else:
            stored = True
        for _, future in batch:
            if not future.done():
                future.set_result(stored)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.storm(self._last)
        await asyncio.to_thread(self._thread.shutdown, wait=True)  # a batch being stored is finished


class InboxWorker:
    """Processes the inbox (`opsloop.intake.inbox`) on a thread of its own: woken after each commit
    of accepted webhooks, and every `idle` seconds (what another replica accepted, what a crash
    left). While webhooks wait to be stored it lets them go first, for at most `patience` seconds,
    so a storm is accepted at full speed and turned into incidents right after; while it goes on,
    each transaction takes `storm_batch` entries (on SQLite a store waits behind a short one). Stopping
    processes what is left, for at most `drain` seconds (the rest waits for the next start)."""

    def __init__(self, inbox: Inbox, *, busy: Callable[[], bool] = lambda: False, idle: float = 1.0,
                 patience: float = 0.5, drain: float = 30.0, storm_batch: int = 8) -> None:
        self.inbox = inbox
        self.busy = busy
        self.idle = idle
        self.patience = patience
        self.drain = drain
        self.storm_batch = storm_batch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="opsloop-inbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.drain + 5)
            self._thread = None
        deadline = time.monotonic() + self.drain
        while time.monotonic() < deadline and self._process_safely():
            pass

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.idle)
            self._wake.clear()
            waited_since = time.monotonic()
            while not self._stop.is_set():
                if self.busy() and time.monotonic() - waited_since < self.patience:
                    time.sleep(0.002)  # webhooks are being stored: they go first
                    continue
                # during a storm, short transactions: the stores waiting behind each one wait less
                if not self._process_safely(self.storm_batch if self.busy() else BATCH):
                    break
                waited_since = time.monotonic()

    def _process_safely(self, limit: int = BATCH) -> int:
        try:
            return self.inbox.process(limit)
        except Exception:
            log.exception("processing the intake inbox failed; trying again")
            self._stop.wait(self.idle)
            return 0


class CoreIntake(Protocol):
    """The inbox worker of another process (`bot.core_process`): told while webhooks wait to be
    stored and when the last came in (`Batcher.storm`), and woken after each stored batch; it
    reports the incidents it opened."""

    intake_created: Callable[[int], None]

    def storm(self, since: float) -> None: ...

    def wake_inbox(self) -> None: ...


@dataclass
class Hooks:
    """The webhook routes, the group commit that stores what they accept, and the worker that
    processes it (started and stopped with the server; None: the core process runs it)."""

    routes: list[Route]
    batcher: Batcher
    worker: InboxWorker | None

    def start(self) -> None:
        if self.worker is not None:
            self.worker.start()  # what a previous run accepted and did not process goes first

    async def stop(self) -> None:
        await self.batcher.close()
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)


def hook_routes(services: Services, registry: CollectorRegistry, *, core: CoreIntake | None = None) -> Hooks:
    """The webhook routes; what they store is processed by an inbox worker of their own, or by the
    core process's (`core`)."""
    alertmanager_tokens = Tokens.of(services.policy, "alertmanager", os.environ)
    events_tokens = Tokens.of(services.policy, "events_v2", os.environ)
    received = Counter("opsloop_intake_signals", "Webhook payloads by integration kind and outcome",
                       ["kind", "outcome"], registry=registry)
    created = Counter("opsloop_intake_incidents_created", "Incidents opened by intake", registry=registry)
    inbox = Inbox(services.db, services.intake, services.clock,
                  processed=lambda outcomes: created.inc(sum(len(o.created) for o in outcomes)))
    batcher = Batcher(inbox.put)
    worker: InboxWorker | None = None
    if core is None:
        worker = InboxWorker(inbox, busy=lambda: batcher.busy)
        batcher.stored = worker.wake
    else:
        batcher.stored, batcher.storm = core.wake_inbox, core.storm
        core.intake_created = created.inc

    async def alertmanager(request: Request) -> Response:
        name = alertmanager_tokens.identify(bearer(request.headers.get("authorization")))
        if name is None:
            received.labels("alertmanager", "unauthorized").inc()
            return refuse(401, {"error": "missing or wrong bearer token"}, unread=True,
                          headers={"WWW-Authenticate": "Bearer"})
        try:
            body = await read_body(request)
            hook = parse(AlertmanagerWebhook, parse_json(body))
        except (BodyTooLarge, BodyIncomplete) as error:
            return _unread(received, "alertmanager", error)
        except BadJSON as error:
            return _refused(received, "alertmanager", 400, [str(error)])
        except PayloadError as error:
            return _refused(received, "alertmanager", 422, error.errors)
        stored = await batcher.submit(Accepted(name, kinds.ALERTMANAGER, body.decode()))  # UTF-8: checked
        if not stored:
            return _unavailable(received, "alertmanager")
        received.labels("alertmanager", "accepted").inc()
        return JSONResponse({"status": "ok", "accepted": len(hook.alerts)})

    async def v2_event(request: Request, kind: str, read: Callable[[Any], T]) -> tuple[str, T] | Response:
        """The integration a PagerDuty-style body names by its `routing_key`, and the body as `read`
        reads it; or PagerDuty's refusal (401 unknown key, 400 not JSON or invalid, 413 too large)."""
        try:
            raw = parse_json(await read_body(request))
        except (BodyTooLarge, BodyIncomplete) as error:
            return _unread(received, kind, error, pagerduty=True)
        except BadJSON as error:
            return _refused(received, kind, 400, [str(error)], pagerduty=True)
        key = raw.get("routing_key") if isinstance(raw, dict) else None
        name = events_tokens.identify(key) if isinstance(key, str) else None
        if name is None:
            received.labels(kind, "unauthorized").inc()
            return JSONResponse({"status": "invalid event", "message": "Unknown routing key",
                                 "errors": ["routing_key: not the key of an events_v2 integration"]},
                                status_code=401)
        try:
            return name, read(raw)
        except PayloadError as error:
            return _refused(received, kind, 400, error.errors, pagerduty=True)

    async def events_v2(request: Request) -> Response:
        found = await v2_event(request, "events_v2", lambda raw: (raw, parse_v2(raw)))
        if isinstance(found, Response):
            return found
        name, (raw, event) = found
        key = event.dedup_key or uuid.uuid4().hex  # PagerDuty's answer names the key it will use
        if not await batcher.submit(Accepted(name, kinds.EVENTS_V2, json.dumps(raw), dedup_key=key)):
            return _unavailable(received, "events_v2", pagerduty=True)
        received.labels("events_v2", "accepted").inc()
        return JSONResponse({"status": "success", "message": "Event processed", "dedup_key": key},
                            status_code=202)

    async def change_event(request: Request) -> Response:
        found = await v2_event(request, "change", lambda raw: parse(ChangeEvent, raw))
        if isinstance(found, Response):
            return found
        await services.pool.run(services.changes.record, *found)
        received.labels("change", "accepted").inc()
        return JSONResponse({"status": "success", "message": "Change event processed"}, status_code=202)

    routes = [Route("/hooks/alertmanager", alertmanager, methods=["POST"]),
              *(Route(path, events_v2, methods=["POST"]) for path in EVENTS_V2),
              Route(CHANGES, change_event, methods=["POST"])]
    return Hooks(routes, batcher, worker)


def _refused(counter: Counter, kind: str, status: int, errors: list[str], *,
             pagerduty: bool = False, unread: bool = False) -> JSONResponse:
    counter.labels(kind, f"refused_{status}").inc()
    body: dict[str, Any] = {"status": "invalid event", "message": "Event object is invalid",
                            "errors": errors} if pagerduty else {"error": "invalid payload", "errors": errors}
    return refuse(status, body, unread=unread)


def _unavailable(counter: Counter, kind: str, *, pagerduty: bool = False) -> JSONResponse:
    """503 when the webhook could not be stored (nothing was): the sender retries, as Alertmanager and
    PagerDuty's clients do on 5xx, after `Retry-After`."""
    counter.labels(kind, "unavailable").inc()
    message = "could not be stored now; nothing was: send it again"
    body: dict[str, Any] = ({"status": "unavailable", "message": message, "errors": []} if pagerduty
                            else {"error": message})
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


def _unread(counter: Counter, kind: str, error: BodyTooLarge | BodyIncomplete, *,
            pagerduty: bool = False) -> JSONResponse:
    """The body was refused before its end: 413 over the limit, 400 when the client went away."""
    if isinstance(error, BodyTooLarge):
        return _refused(counter, kind, 413, ["body: larger than 1 MiB"], pagerduty=pagerduty, unread=True)
    return _refused(counter, kind, 400, ["body: ended early"], pagerduty=pagerduty, unread=True)
