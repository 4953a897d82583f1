"""The status pages of `opsloop serve`.

    GET /status                      the public page: items marked public, approved updates, no tenant
    GET /status/feed.atom            the same as an Atom feed
    GET /status/t/TOKEN              one tenant's page, reached by the link `opsloop status link` prints
    GET /status/t/TOKEN/feed.atom    that tenant's Atom feed

A token that opens no page (malformed, forged, revoked, of a tenant since
removed) gets exactly the 404 of any wrong path: `not_found`, which the app
also answers for every path it does not know, so a guesser cannot tell a
revoked link from a typo. Query strings and bodies are ignored. Every page
carries a Content-Security-Policy that allows nothing but its own inline
style, and tenant pages are neither cached nor indexed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from bot.bootstrap import Services
from opsloop.present import status_pages as present
from opsloop.status.links import MAX_TOKEN
from opsloop.status.pages import TenantPage

log = logging.getLogger(__name__)

SECURITY = {"Content-Security-Policy": present.CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cross-Origin-Resource-Policy":
            "same-origin"}
PRIVATE = {**SECURITY, "Cache-Control": "private, no-store", "X-Robots-Tag": "noindex, nofollow"}
PUBLIC = {**SECURITY, "Cache-Control": "public, max-age=30"}
ATOM_TYPE = "application/atom+xml; charset=utf-8"


def not_found() -> Response:
    return HTMLResponse(present.not_found_html(), status_code=404, headers=PRIVATE)


async def not_found_handler(request: Request, exc: Exception) -> Response:
    """The app's answer to every path it does not know (and to every token that opens nothing)."""
    return not_found()


def _unavailable() -> Response:
    return HTMLResponse(present.unavailable_html(), status_code=503, headers={**PRIVATE, "Retry-After": "30"})


def _guarded(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except SQLAlchemyError:
            log.warning("status page: the database did not answer", exc_info=True)
            return _unavailable()

    return guarded


def status_routes(services: Services) -> list[Route]:
    policy = services.policy

    def absolute(request: Request, path: str) -> str:
        base = policy.status.base_url or str(request.base_url)
        return base.rstrip("/") + path

    async def public_page(request: Request) -> Response:
        page = await services.pool.run(services.status_pages.public)
        return HTMLResponse(present.public_html(page, feed_url="status/feed.atom"), headers=PUBLIC)

    async def public_feed(request: Request) -> Response:
        page = await services.pool.run(services.status_pages.public)
        body = present.atom(page.incidents, title="Service status", key="public", at=page.at,
                            page_url=absolute(request, "/status"),
                            self_url=absolute(request, "/status/feed.atom"))
        return Response(body, media_type=ATOM_TYPE, headers=PUBLIC)

    async def tenant_of(token: str) -> TenantPage | None:
        """The tenant's page the token opens; None (the same 404 as a wrong path) for any other."""
        if len(token) > MAX_TOKEN:
            return None
        return await services.pool.run(services.status_pages.tenant, token)

    async def tenant_page(request: Request) -> Response:
        token = request.path_params["token"]
        page = await tenant_of(token)
        if page is None:
            return not_found()
        return HTMLResponse(present.tenant_html(page, feed_url=f"{token}/feed.atom"), headers=PRIVATE)

    async def tenant_feed(request: Request) -> Response:
        token = request.path_params["token"]
        page = await tenant_of(token)
        if page is None:
            return not_found()
        path = f"/status/t/{token}"
        body = present.atom(page.incidents, title=f"Service status for {page.name}", key=page.feed_key,
                            at=page.at, page_url=absolute(request, path),
                            self_url=absolute(request, path + "/feed.atom"))
        return Response(body, media_type=ATOM_TYPE, headers=PRIVATE)

    return [Route("/status", _guarded(public_page), methods=["GET"]),
            Route("/status/feed.atom", _guarded(public_feed), methods=["GET"]),
            Route("/status/t/{token}", _guarded(tenant_page), methods=["GET"]),
            Route("/status/t/{token}/feed.atom", _guarded(tenant_feed), methods=["GET"])]
