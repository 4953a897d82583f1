"""`POST /hooks/signals`: customer-health signals from an integration of kind `signals`.

`Authorization: Bearer <token>`, the token read from the integration's
`token_env` variable when the route is built, compared in constant time
against every signals integration (which one matched names the source).

| answer | when |
|---|---|
| 200 `{"stored": n, "tenants": [...], "prompts": k}` | every signal stored |
| 401 | no or a wrong token (nothing read, nothing stored) |
| 400 | the body is not JSON |
| 413 | the body is over 1 MiB |
| 422 `{"error": ..., "field": "[2].value"}` | a bad signal or an unknown tenant: nothing stored |

Mount it with `routes.append(signals_route(services))` in the HTTP app.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.bootstrap import Services
from opsloop.health.signals import SignalError, UnknownTenant

log = logging.getLogger(__name__)

PATH = "/hooks/signals"
MAX_BODY = 1024 * 1024  # 1 MiB


class TooLarge(Exception):
    pass


def signal_tokens(services: Services, environ: Mapping[str, str]) -> dict[str, bytes]:
    """Integration name -> its token, for every `signals` integration whose variable is set."""
    tokens = {}
    for integration in services.policy.integrations:
        if integration.kind != "signals":
            continue
        token = environ.get(integration.token_env, "").strip()
        if token:
            tokens[integration.name] = token.encode()
        else:  # the variable's name is no secret; its value never reaches the log
            log.warning("signals integration %s: %s is not set; its requests get 401",
                        integration.name, integration.token_env)
    return tokens


def authenticate(header: str | None, tokens: Mapping[str, bytes]) -> str | None:
    """The integration whose token the `Authorization` header carries, or None."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    offered = given.strip().encode()
    found = None
    for name, token in tokens.items():  # every token is compared: timing says nothing about which
        if hmac.compare_digest(offered, token) and found is None:
            found = name
    return found


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, refusing more than `limit` bytes whether or not Content-Length says so."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def signals_endpoint(request: Request, services: Services, tokens: Mapping[str, bytes]) -> Response:
    source = authenticate(request.headers.get("authorization"), tokens)
    if source is None:
        return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    try:
        body = await read_body(request)
    except TooLarge:
        return JSONResponse({"error": f"the body is over {MAX_BODY} bytes"}, status_code=413)
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return JSONResponse({"error": f"the body is not JSON: {error}", "field": "(body)"}, status_code=400)
    try:
        result = await services.pool.run(services.health.ingest, payload, source=source)
    except (SignalError, UnknownTenant) as error:
        return JSONResponse({"error": str(error), "field": error.field or "(body)"}, status_code=422)
    return JSONResponse({"stored": result.stored, "tenants": result.tenants, "prompts": result.prompts})


def signals_route(services: Services, *, environ: Mapping[str, str] | None = None) -> Route:
    """The route to mount; tokens are read from `environ` (default: the process environment) now."""
    tokens = signal_tokens(services, os.environ if environ is None else environ)

    async def endpoint(request: Request) -> Response:
        return await signals_endpoint(request, services, tokens)

    return Route(PATH, endpoint, methods=["POST"])
