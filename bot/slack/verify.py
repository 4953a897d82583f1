"""POST /slack/events: verified, once, before Bolt sees anything.

Bolt verifies signatures too, but only after its own error handling is in
place: a malformed timestamp made it raise, and its error handler then
answered through the `response_url` of the unverified body. So here, in order:

1. the headers: `X-Slack-Request-Timestamp` is 1 to 12 ASCII digits within 5
   minutes of now, `X-Slack-Signature` is `v0=` and 64 hex digits; else 401
   without reading the body;
2. the body, read as it streams up to MAX_BODY (413 beyond);
3. the signature (HMAC-SHA256 of `v0:timestamp:body`); else 401;
4. Slack's own retries of an event (`X-Slack-Retry-Num`) are answered 200 and
   ignored: the first delivery was, or is being, handled;
5. replays: a (timestamp, signature) seen before, on any replica, is answered
   200 and does nothing (`opsloop.replays`);

and only then the request is handed to Bolt (which checks the signature again).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from starlette.requests import Request
from starlette.responses import Response

from bot.edge import BodyIncomplete, BodyTooLarge, read_body, refuse
from opsloop.replays import Replays, digest

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024  # Slack's own payloads are a few KiB; a modal submission at most tens
WINDOW = 300  # seconds a timestamp may be off (Slack's rule)
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
UNVERIFIED = {"error": "the request is not signed by Slack (bad or missing signature, or a stale timestamp)"}


class SlackVerifier:
    def __init__(self, signing_secret: str, *, now: Callable[[], float] = time.time) -> None:
        self.secret = signing_secret.encode()
        self.now = now

    def headers_ok(self, timestamp: str | None, signature: str | None) -> bool:
        if timestamp is None or signature is None:
            return False
        if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
            return False
        return abs(self.now() - int(timestamp)) <= WINDOW

    def signed(self, timestamp: str, signature: str, body: bytes) -> bool:
        expected = hmac.new(self.secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
        return hmac.compare_digest("v0=" + expected.hexdigest(), signature)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class ReplayKeeper:
    """Keeps `Replays` in step with the database: loads what counts at start, then writes behind
    and prunes every `every` seconds in a daemon thread, and once more when stopped."""

    def __init__(self, replays: Replays, *, every: float = 0.25,
                 now: Callable[[], float] = time.time) -> None:
        self.replays = replays
        self.every = every
        self.now = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.replays.load(_utc(self.now()))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="opsloop-replays", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._flush()

    def _flush(self) -> None:
        try:
            self.replays.flush(_utc(self.now()))
        except Exception:  # the database may be away for a moment; what is unwritten stays in memory
            log.exception("could not store the requests seen")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._flush()


def slack_endpoint(app: AsyncApp, verifier: SlackVerifier,
                   replays: Replays) -> Callable[[Request], Awaitable[Response]]:
    async def slack_events(request: Request) -> Response:
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        if not verifier.headers_ok(timestamp, signature):
            return refuse(401, UNVERIFIED, unread=True)
        assert timestamp is not None and signature is not None
        try:
            body = await read_body(request, MAX_BODY)
        except BodyTooLarge as error:
            return refuse(413, {"error": str(error)}, unread=True)
        except BodyIncomplete:
            return refuse(400, {"error": "the body ended early"}, unread=True)
        if not verifier.signed(timestamp, signature, body):
            return refuse(401, UNVERIFIED)
        if request.headers.get("x-slack-retry-num") is not None:
            return Response(status_code=200)
        key, expires = digest(timestamp, signature), _utc(int(timestamp) + WINDOW) + timedelta(seconds=1)
        if replays.write_behind:  # memory only: no thread hop
            first = replays.first_time(key, now=_utc(verifier.now()), expires_at=expires)
        else:
            first = await asyncio.to_thread(replays.first_time, key, now=_utc(verifier.now()),
                                            expires_at=expires)
        if not first:
            return Response(status_code=200)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return refuse(400, {"error": "the body is not UTF-8"})
        bolt_request = AsyncBoltRequest(body=text, query=request.query_params,  # type: ignore[arg-type]
                                        headers=request.headers)  # type: ignore[arg-type]
        return to_starlette_response(await app.async_dispatch(bolt_request))

    return slack_events
