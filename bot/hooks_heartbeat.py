"""`POST /hooks/heartbeat/NAME`: a job checks in (heartbeats, a dead man's switch).

`Authorization: Bearer <token>` of an integration of kind `heartbeat`, compared
in constant time against every one of them (which one matched is the actor).
The body is read (up to 1 MiB) and ignored: `curl -fsS -X POST -H ... URL` is
all a cron job needs.

| answer | when |
|---|---|
| 200 `{"status": "ok", "heartbeat": NAME, "next_due": ISO, "resolved": "INC-n" or null}` | checked in |
| 401 | no or a wrong token (nothing read, nothing changed) |
| 404 | no heartbeat of that name in the policy |
| 413 | the body is over 1 MiB |
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.bootstrap import Services
from bot.edge import MAX_BODY, BodyIncomplete, BodyTooLarge, Tokens, bearer, read_body, refuse
from opsloop.errors import NotFound
from opsloop.types import SYSTEM_PREFIX

PATH = "/hooks/heartbeat/{name}"


def heartbeat_route(services: Services, *, environ: Mapping[str, str] | None = None) -> Route:
    """The route to mount; tokens are read from `environ` (default: the process environment) now."""
    tokens = Tokens.of(services.policy, "heartbeat", os.environ if environ is None else environ)

    async def endpoint(request: Request) -> Response:
        source = tokens.identify(bearer(request.headers.get("authorization")))
        if source is None:
            return refuse(401, {"error": "missing or wrong bearer token"}, unread=True,
                          headers={"WWW-Authenticate": "Bearer"})
        try:
            await read_body(request)
        except BodyTooLarge:
            return refuse(413, {"error": f"the body is over {MAX_BODY} bytes"}, unread=True)
        except BodyIncomplete:
            return refuse(400, {"error": "the body ended early"}, unread=True)
        name = request.path_params["name"]
        try:
            done = await services.pool.run(services.heartbeats.check_in, name,
                                           actor=f"{SYSTEM_PREFIX}{source}")
        except NotFound as error:
            return JSONResponse({"error": str(error)}, status_code=404)
        return JSONResponse({"status": "ok", "heartbeat": done.name, "next_due": done.next_due.isoformat(),
                             "resolved": done.resolved})

    return Route(PATH, endpoint, methods=["POST"])
