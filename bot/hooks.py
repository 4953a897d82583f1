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
400 naming the field, `bot.edge.parse_json`). Accepted payloads are stored by `Batcher`: requests arriving
together are committed in one transaction (group commit), and each request
is answered only after its batch committed, so an answer means "stored".
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.bootstrap import Services
from bot.core_pool import CorePool
from bot.edge import BadJSON, BodyIncomplete, BodyTooLarge, Tokens, bearer, parse_json, read_body, refuse
from opsloop.intake.payloads import AlertmanagerWebhook, ChangeEvent, PayloadError, parse, parse_v2
from opsloop.intake.service import Outcome, Signal

log = logging.getLogger(__name__)
T = TypeVar("T")

EVENTS_V2 = ("/hooks/events/v2", "/hooks/events/v2/enqueue")
CHANGES = "/hooks/events/v2/change/enqueue"
HOOK_ROUTES = ("/hooks/alertmanager", *EVENTS_V2, CHANGES)


class Batcher:
    """Group commit: payloads that arrive within `window` share one transaction."""

    def __init__(self, ingest: Callable[[Sequence[Signal]], list[Outcome]], pool: CorePool, *,
                 window: float = 0.005, max_batch: int = 500) -> None:
        self.ingest = ingest
        self.pool = pool
        self.window = window
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Signal, asyncio.Future[Outcome]]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def submit(self, signal: Signal) -> Outcome:
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._run(self._queue))
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        await self._queue.put((signal, future))
        return await future

    async def _run(self, queue: asyncio.Queue[tuple[Signal, asyncio.Future[Outcome]]]) -> None:
        while True:
            batch = [await queue.get()]
            await asyncio.sleep(self.window)  # let the requests arriving together join
            while not queue.empty() and len(batch) < self.max_batch:
                batch.append(queue.get_nowait())
            await self._store(batch)

    async def _store(self, batch: list[tuple[Signal, asyncio.Future[Outcome]]]) -> None:
        try:
            outcomes = await self.pool.run(self.ingest, [signal for signal, _ in batch])
        except Exception:
            if len(batch) == 1:
                log.exception("storing a signal failed")
                _settle(batch[0][1], error=True)
                return
            # one bad apple must not fail its neighbours: store them one by one
            for item in batch:
                await self._store([item])
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _settle(future: asyncio.Future[Outcome], outcome: Outcome | None = None, *, error: bool = False) -> None:
    if future.done():
        return
    if error:
        future.set_exception(RuntimeError("the signal could not be stored"))
    else:
        assert outcome is not None
        future.set_result(outcome)


def hook_routes(services: Services, registry: CollectorRegistry) -> tuple[list[Route], Batcher]:
    alertmanager_tokens = Tokens.of(services.policy, "alertmanager", os.environ)
    events_tokens = Tokens.of(services.policy, "events_v2", os.environ)
    batcher = Batcher(services.intake.ingest, services.pool)
    received = Counter("opsloop_intake_signals", "Webhook payloads by integration kind and outcome",
                       ["kind", "outcome"], registry=registry)
    created = Counter("opsloop_intake_incidents_created", "Incidents opened by intake", registry=registry)

    async def alertmanager(request: Request) -> Response:
        name = alertmanager_tokens.identify(bearer(request.headers.get("authorization")))
        if name is None:
            received.labels("alertmanager", "unauthorized").inc()
            return refuse(401, {"error": "missing or wrong bearer token"}, unread=True,
                          headers={"WWW-Authenticate": "Bearer"})
        try:
            raw = parse_json(await read_body(request))
            hook = parse(AlertmanagerWebhook, raw)
        except (BodyTooLarge, BodyIncomplete) as error:
            return _unread(received, "alertmanager", error)
        except BadJSON as error:
            return _refused(received, "alertmanager", 400, [str(error)])
        except PayloadError as error:
            return _refused(received, "alertmanager", 422, error.errors)
        outcome = await batcher.submit((name, hook))
        received.labels("alertmanager", "accepted").inc()
        created.inc(len(outcome.created))
        return JSONResponse({"status": "ok", "created": outcome.created,
                             "updated": sorted(set(outcome.touched))})

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
        found = await v2_event(request, "events_v2", parse_v2)
        if isinstance(found, Response):
            return found
        outcome = await batcher.submit(found)
        received.labels("events_v2", "accepted").inc()
        created.inc(len(outcome.created))
        return JSONResponse({"status": "success", "message": "Event processed",
                             "dedup_key": outcome.dedup_key}, status_code=202)

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
    return routes, batcher


def _refused(counter: Counter, kind: str, status: int, errors: list[str], *,
             pagerduty: bool = False, unread: bool = False) -> JSONResponse:
    counter.labels(kind, f"refused_{status}").inc()
    body: dict[str, Any] = {"status": "invalid event", "message": "Event object is invalid",
                            "errors": errors} if pagerduty else {"error": "invalid payload", "errors": errors}
    return refuse(status, body, unread=unread)


def _unread(counter: Counter, kind: str, error: BodyTooLarge | BodyIncomplete, *,
            pagerduty: bool = False) -> JSONResponse:
    """The body was refused before its end: 413 over the limit, 400 when the client went away."""
    if isinstance(error, BodyTooLarge):
        return _refused(counter, kind, 413, ["body: larger than 1 MiB"], pagerduty=pagerduty, unread=True)
    return _refused(counter, kind, 400, ["body: ended early"], pagerduty=pagerduty, unread=True)
