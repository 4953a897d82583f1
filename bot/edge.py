"""What every inbound request passes before anything acts on it: one bounded body reader, one token check.

`read_body` reads a body as it streams and stops at its limit whether or not
`Content-Length` was sent (a declared length over the limit is refused before
a byte is read), so a 300 MiB chunked body costs at most the limit in memory.
`refuse` answers a refusal; when the body was not read to its end it closes
the connection, so the server does not go on receiving what nobody reads.

`parse_json` reads a body as JSON that every later step can hold: nesting at
most `MAX_DEPTH` deep, integers that fit 64 bits, finite numbers, and text
without NUL characters (PostgreSQL cannot store them) or lone surrogates (not
Unicode). Anything else is `BadJSON` naming the field (`alerts[0].labels.x`),
answered 400 before a model or the database sees it.

`Tokens` holds the secrets of the policy's `integrations` of one kind (read
from each integration's `token_env` when the routes are built) and names the
integration a presented secret belongs to, comparing against every one of
them in constant time: how long it takes says nothing about which matched.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
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


MAX_DEPTH = 32  # objects and arrays inside each other; no payload opsloop reads needs more than 6
MAX_INT = 2**63 - 1  # what a 64-bit column holds
_UNFIT = re.compile("[\x00\ud800-\udfff]")


class BadJSON(ValueError):
    """A body that is not JSON opsloop can hold; `field` says where (`(body)` for the whole)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class _Unfit:
    """A number json.loads read that no column holds, kept to be reported with its field."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _int(text: str) -> int | _Unfit:
    # json.loads itself refuses (ValueError, no field) integers past 4,300 digits: check first
    if len(text.lstrip("-")) > 19 or abs(value := int(text)) > MAX_INT:
        return _Unfit("an integer out of range (at most 19 digits, 64 bits)")
    return value


def _float(text: str) -> float | _Unfit:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return _Unfit(f"the number {text[:20]} is out of range")
    return value


def _constant(text: str) -> _Unfit:
    return _Unfit(f"{text} is not a JSON number")


def parse_json(body: bytes) -> Any:
    """The body as JSON opsloop can store, or BadJSON naming the field at fault."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadJSON("(body)", f"not UTF-8 ({error.reason} at byte {error.start})") from None
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise BadJSON("(body)", f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:  # JSONDecodeError and its kin
        raise BadJSON("(body)", f"not JSON ({error})") from None
    _check(value)
    return value


def _check(root: Any) -> None:
    """Walk the parsed body (without recursion: depth is what is being checked)."""
    stack: list[tuple[Any, str, int]] = [(root, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        field = where or "(body)"
        if isinstance(value, _Unfit):
            raise BadJSON(field, value.reason)
        if isinstance(value, str):
            _text(value, field)
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise BadJSON(field, f"nested deeper than {MAX_DEPTH} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    _text(key, f"{where}.(a key)" if where else "(a key)")
                    stack.append((item, f"{where}.{key}" if where else key, depth + 1))
            else:
                stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))


def _text(value: str, field: str) -> None:
    found = _UNFIT.search(value)
    if found is None:
        return
    what = "a NUL character" if found.group() == "\x00" else "a lone surrogate (not Unicode text)"
    raise BadJSON(_printable(field), f"contains {what}")


def _printable(field: str) -> str:
    """A field path fit to be shown (it may hold the very characters refused, or be huge)."""
    shown = _UNFIT.sub("?", field)
    return shown if len(shown) <= 200 else shown[:200] + "…"


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
