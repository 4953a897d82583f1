"""`POST /hooks/signals`: customer-health signals from an integration of kind `signals`.

`Authorization: Bearer <token>`, the token read from the integration's
`token_env` variable when the route is built, compared in constant time
against every signals integration (which one matched names the source).

| answer | when |
|---|---|
| 200 `{"stored": n, "tenants": [...], "prompts": k}` | every signal stored |
| 401 | no or a wrong token (nothing read, nothing stored) |
| 400 `{"error": ..., "field": ...}` | the body is not JSON opsloop can hold (`bot.edge.parse_json`) |
| 413 | the body is over 1 MiB |
| 422 `{"error": ..., "field": "[2].value"}` | a bad signal or an unknown tenant: nothing stored |

Mount it with `routes.append(signals_route(services))` in the HTTP app.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.bootstrap import Services
from bot.edge import (
    MAX_BODY,
    BadJSON,
    BodyIncomplete,
    BodyTooLarge,
    Tokens,
    bearer,
    parse_json,
    read_body,
    refuse,
)
from opsloop.health.signals import SignalError, UnknownTenant

PATH = "/hooks/signals"
UNAUTHORIZED = {"error": "missing or wrong bearer token"}


async def signals_endpoint(request: Request, services: Services, tokens: Tokens) -> Response:
    source = tokens.identify(bearer(request.headers.get("authorization")))
    if source is None:
        return refuse(401, UNAUTHORIZED, unread=True, headers={"WWW-Authenticate": "Bearer"})
    try:
        body = await read_body(request)
    except BodyTooLarge:
        return refuse(413, {"error": f"the body is over {MAX_BODY} bytes", "field": "(body)"}, unread=True)
    except BodyIncomplete:
        return refuse(400, {"error": "the body ended early", "field": "(body)"}, unread=True)
    try:
        payload = parse_json(body)
    except BadJSON as error:
        return JSONResponse({"error": str(error), "field": error.field}, status_code=400)
    try:
        result = await services.pool.run(services.health.ingest, payload, source=source)
    except (SignalError, UnknownTenant) as error:
        return JSONResponse({"error": str(error), "field": error.field or "(body)"}, status_code=422)
    return JSONResponse({"stored": result.stored, "tenants": result.tenants, "prompts": result.prompts})


def signals_route(services: Services, *, environ: Mapping[str, str] | None = None) -> Route:
    """The route to mount; tokens are read from `environ` (default: the process environment) now."""
    tokens = Tokens.of(services.policy, "signals", os.environ if environ is None else environ)

    async def endpoint(request: Request) -> Response:
        return await signals_endpoint(request, services, tokens)

    return Route(PATH, endpoint, methods=["POST"])
