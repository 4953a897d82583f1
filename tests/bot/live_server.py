"""`opsloop serve`'s app on a real uvicorn, in a thread, on an ephemeral port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import uvicorn
from starlette.applications import Starlette

from opsloop.outbox import Dispatcher
from tests.bot.slack_requests import FORM, sign
from tests.support import PATIENCE, FakeClock


class LiveServer:
    def __init__(self, app: Starlette, *, dispatcher: Dispatcher, clock: FakeClock, secret: str) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="on", access_log=False))
        self.dispatcher = dispatcher
        self.clock = clock
        self.secret = secret
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self.client: httpx.Client | None = None

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + PATIENCE
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=PATIENCE)
        return self

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.server.should_exit = True
        self._thread.join(timeout=PATIENCE)

    def post(self, body: str, *, content_type: str = FORM, timestamp: int | None = None,
             secret: str | None = None) -> httpx.Response:
        assert self.client is not None
        headers = {"Content-Type": content_type, **sign(body, secret or self.secret, timestamp)}
        return self.client.post("/slack/events", content=body, headers=headers)

    def get(self, path: str) -> httpx.Response:
        assert self.client is not None
        return self.client.get(path)

    def settle(self, done: Callable[[], bool], *, step: float = 1.0, timeout: float = PATIENCE) -> None:
        """Let fake time pass (for pacing and Retry-After) until `done()`, or fail."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for a condition")
            self.clock.advance(seconds=step)
            self.dispatcher.wake()
            time.sleep(0.02)

