"""The HTTP app of `opsloop serve`: Slack's one Request URL, health, readiness, metrics.

    POST /slack/events   every Slack request (commands, interactivity, events): verified, bounded and
                         checked for replays (bot.slack.verify) before Bolt sees it
    POST /hooks/...      alert intake (bot.hooks), customer-health signals (bot.hooks_signals),
                         heartbeat check-ins (bot.hooks_heartbeat)
    GET  /healthz        the process answers
    GET  /readyz         the database answers and its schema is current (else 503 and why)
    GET  /metrics        Prometheus text: requests, outbox depth, deliveries, failures, Slack 429s
    GET  /openapi.json   the OpenAPI document of these routes (bot.openapi)

The lifespan starts `services.background` (the outbox worker, and whatever
else registers there, e.g. the scheduler) and stops it in reverse order. With
`core` (`opsloop serve`) the core runs in a process of its own
(`bot.core_process`): the workers run there, and this process keeps the edge;
the lifespan stops that process last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import openapi
from bot.bootstrap import Services
from bot.core_process import ProcessCorePool
from bot.hooks import HOOK_ROUTES, hook_routes
from bot.hooks_heartbeat import heartbeat_route
from bot.hooks_signals import signals_route
from bot.settings import Settings
from bot.slack.app import create_slack_app
from bot.slack.replies import finish_owed
from bot.slack.verify import ReplayKeeper, SlackVerifier, slack_endpoint
from bot.status_routes import not_found_handler, status_routes
from opsloop import outbox
from opsloop.intake.inbox import inbox_depth
from opsloop.outbox import DeliveryStats, Dispatcher
from opsloop.replays import Replays

log = logging.getLogger(__name__)

ROUTES = ("/slack/events", "/healthz", "/readyz", "/metrics", "/openapi.json", *HOOK_ROUTES, "/hooks/signals",
          "/status", "/status/feed.atom")


def create_http_app(
    services: Services, settings: Settings, *, dispatcher: Dispatcher | None = None,
    core: ProcessCorePool | None = None,
) -> Starlette:
    """The app; with `core` (started, and `services.pool`), the core's work is that process's."""
    slack_app = create_slack_app(services, settings)
    assert settings.slack_signing_secret is not None  # create_slack_app refuses to build without it
    verifier = SlackVerifier(settings.slack_signing_secret.get_secret_value())
    replays = Replays(services.db)
    slack_events = slack_endpoint(slack_app.app, verifier, replays)
    keeper = ReplayKeeper(replays, now=verifier.now)
    registry = CollectorRegistry()
    registry.register(_OutboxCollector(services, core.delivery_stats if core is not None else
                                       (lambda: dispatcher.stats if dispatcher is not None else None)))
    requests = Counter("opsloop_http_requests", "HTTP requests by route and status",
                       ["route", "status"], registry=registry)
    latency = Histogram("opsloop_http_request_duration_seconds", "Time to answer, by route", ["route"],
                        registry=registry,
                        buckets=(.005, .01, .015, .02, .025, .03, .04, .05, .06, .07, .08, .09, .1,
                                 .125, .15, .2, .25, .5, 1, 2.5, 5))

    hooks = hook_routes(services, registry, core=core)

    async def healthz(request: Request) -> Response:
        # liveness: a server whose core process died acknowledges but can do nothing, and is not
        # restarted from within (forking again once threads run is unsafe): the supervisor restarts it
        if core is not None and core.exited is not None:
            return JSONResponse({"status": "down", "reason": core.exited}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        problem = core.problem if core is not None else None
        problem = problem or await asyncio.to_thread(_readiness_problem, services)
        if problem is not None:
            return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    described = JSONResponse(openapi.document())

    async def openapi_json(request: Request) -> Response:
        return described

    async def metrics(request: Request) -> Response:
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started = []
        await slack_app.session.open()
        await asyncio.to_thread(keeper.start)
        try:
            for worker in services.background:
                worker.start()
                started.append(worker)
            hooks.start()
            yield
        finally:
            await hooks.stop()  # what was accepted is processed, its messages queued, before workers stop
            await finish_owed(services.pool)  # before the workers stop: its messages still go out
            for worker in reversed(started):
                worker.stop()
            if core is not None:  # after the drain: what it ran was answered
                await asyncio.to_thread(core.stop)
            await asyncio.to_thread(keeper.stop)
            await slack_app.session.close()

    app = Starlette(
        routes=[Route("/slack/events", slack_events, methods=["POST"]),
                Route("/healthz", healthz, methods=["GET"]),
                Route("/readyz", readyz, methods=["GET"]),
                Route("/metrics", metrics, methods=["GET"]),
                Route("/openapi.json", openapi_json, methods=["GET"]), *hooks.routes, signals_route(services),
                heartbeat_route(services), *status_routes(services)],
        lifespan=lifespan,
        exception_handlers={404: not_found_handler},  # every wrong path: the status pages' 404 page
    )
    app.add_middleware(_Measure, requests=requests, latency=latency)
    return app


def _readiness_problem(services: Services) -> str | None:
    try:
        current = services.db.migrations_current()
    except Exception as error:
        reason = str(error).splitlines()[0][:200] if str(error) else ""
        return f"database unreachable: {type(error).__name__} {reason}".strip()
    return None if current else "database schema is not current: run `opsloop db upgrade`"


class _OutboxCollector(Collector):
    """Read at scrape time: the outbox's depth from the database, the dispatcher's counters."""

    def __init__(self, services: Services, delivery: Callable[[], DeliveryStats | None]) -> None:
        self.services = services
        self.delivery = delivery

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        try:
            with self.services.db.snapshot() as session:
                depth = outbox.depth(session)
                waiting, set_aside = inbox_depth(session)
        except Exception:
            log.warning("metrics: cannot read the outbox's and the inbox's depth", exc_info=True)
            depth = waiting = set_aside = -1
        yield GaugeMetricFamily("opsloop_outbox_depth", "Messages waiting to be delivered (-1: unknown)",
                                value=depth)
        yield GaugeMetricFamily("opsloop_intake_inbox_waiting", "Accepted webhooks waiting to be turned into "
                                "incidents (-1: unknown)", value=waiting)
        yield GaugeMetricFamily("opsloop_intake_inbox_set_aside", "Accepted webhooks that could not be "
                                "processed, kept with their error (-1: unknown)", value=set_aside)
        yield GaugeMetricFamily("opsloop_core_pending", "Core calls (commands, presses, intake) "
                                "running or queued behind the core threads", value=self.services.pool.pending)
        stats = self.delivery()
        if stats is None:
            return
        for name, help_text, value in (
            ("opsloop_outbox_delivered", "Messages delivered", stats.delivered),
            ("opsloop_outbox_delivery_failures", "Failed delivery attempts (retried or not)", stats.failures),
            ("opsloop_outbox_dead", "Messages that failed for good", stats.dead),
            ("opsloop_slack_rate_limited", "Deliveries Slack answered with 429 / ratelimited",
             stats.rate_limited),
        ):
            yield CounterMetricFamily(name, help_text, value=value)


class _Measure:
    """Counts every request by route (unknown paths as `other`, so labels stay few) and status."""

    def __init__(self, app: ASGIApp, *, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = scope["path"]
            route = (path if path in ROUTES else
                     "/hooks/heartbeat" if path.startswith("/hooks/heartbeat/") else
                     "/status/t" if path.startswith("/status/t/") else "other")  # never a token in a label
            self.requests.labels(route, str(status)).inc()
            self.latency.labels(route).observe(time.perf_counter() - started)
