"""What every inbound request passes before anything acts on it: one bounded body reader, one token check.

`read_body` reads a body as it streams and stops at its limit whether or not
`Content-Length` was sent (a declared length over the limit is refused before
a byte is read), so a 300 MiB chunked body costs at most the limit in memory.
`refuse` answers a refusal; when the body was not read to its end it closes
the connection, so the server does not go on receiving what nobody reads.

`Tokens` holds the secrets of the policy's `integrations` of one kind (read
from each integration's `token_env` when the routes are built) and names the
integration a presented secret belongs to, comparing against every one of
them in constant time: how long it takes says nothing about which matched.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from opsloop.policy import Policy

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # webhooks (SPEC: bodies over 1 MiB get 413)
CLOSE = {"Connection": "close"}


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than {limit} bytes")
        self.limit = limit


class BodyIncomplete(Exception):
    """The client went away before its body ended."""


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The whole body, or BodyTooLarge as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            if len(body) + len(chunk) > limit:
                raise BodyTooLarge(limit)
            body += chunk
    except ClientDisconnect:
        raise BodyIncomplete from None
    return bytes(body)


def refuse(status: int, content: Mapping[str, Any], *, unread: bool = False,
           headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A JSON refusal; `unread`: the body was not read to its end, so the connection is closed."""
    return JSONResponse(dict(content), status_code=status,
                        headers={**(headers or {}), **(CLOSE if unread else {})})


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class Tokens:
    """The secrets of one kind of integration: integration name -> secret."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._secrets = {name: secret.encode() for name, secret in secrets.items()}

    @classmethod
    def of(cls, policy: Policy, kind: str, environ: Mapping[str, str]) -> Tokens:
        secrets: dict[str, str] = {}
        for integration in policy.integrations:
            if integration.kind != kind:
                continue
            secret = environ.get(integration.token_env, "").strip()
            if secret:
                secrets[integration.name] = secret
            else:  # the variable's name is no secret; its value never reaches the log
                log.warning("integration %s: %s is not set; its requests get 401",
                            integration.name, integration.token_env)
        return cls(secrets)

    def identify(self, presented: str | None) -> str | None:
        """The integration whose secret is `presented`; every secret is compared, whatever matched."""
        if not presented:
            return None
        offered = presented.encode("utf-8", "surrogatepass")  # a JSON string may carry a lone surrogate
        found = None
        for name, secret in self._secrets.items():
            if hmac.compare_digest(offered, secret) and found is None:
                found = name
        return found
