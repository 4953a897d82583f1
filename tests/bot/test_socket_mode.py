"""`opsloop socket`, the real command in its own process, against a local Socket Mode server.

Slack's side is two stand-ins: the mock Web API, whose `apps.connections.open` hands out the URL of
`SocketModeServer` (a WebSocket server speaking Slack's Socket Mode protocol: `hello` on connect,
then envelopes the client must acknowledge by `envelope_id`), and that server. The test sends the
envelopes Slack would send for a slash command and a button press and checks each one's
acknowledgement and outcome; then it drops the connection (as a network failure does) and sees the
client fetch a new URL, reconnect and go on working; and Slack's own request to reconnect
(`disconnect`, refresh_requested). SIGTERM stops it cleanly.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import WSMsgType, web

from tests.bot.e2e import buttons, fields, posts, responses, slack_policy, write_policy
from tests.bot.mock_slack import Call, MockSlack
from tests.bot.processes import rows
from tests.bot.slack_requests import command_body, press_body
from tests.support import PATIENCE, ROOT, wait_until

pytestmark = [pytest.mark.slow,
              # Socket Mode is a transport: storage is covered on both backends by the HTTP flows
              pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

COMMANDER, RESPONDER = "U0RESP1", "U0RESP2"
APP_TOKEN = "xapp-1-A0APP-test"


class SocketModeServer:
    """Slack's Socket Mode endpoint on 127.0.0.1 (aiohttp, its own event loop in a daemon thread).

    Each connection is greeted with `hello`; `send` writes an envelope (or any text) to the current
    connection; whatever the client sends back is kept in `received`; `drop` cuts the current
    connection without a closing handshake, as a network failure does."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._current: tuple[web.WebSocketResponse, web.Request] | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket=test-ticket&app_id=A0APP"

    def start(self) -> SocketModeServer:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=PATIENCE)

    def acks(self) -> dict[str, dict[str, Any]]:
        """The client's acknowledgements, by envelope id."""
        with self._lock:
            return {m["envelope_id"]: m for m in self.received if "envelope_id" in m}

    def send(self, message: dict[str, Any] | str) -> None:
        self._call(self._send(message if isinstance(message, str) else json.dumps(message)))

    def drop(self) -> None:
        self._call(self._drop())

    def _call(self, work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=PATIENCE)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/link/", self._connection)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _connection(self, request: web.Request) -> web.WebSocketResponse:
        assert request.query.get("ticket") == "test-ticket"
        socket = web.WebSocketResponse()  # answers the client's pings
        await socket.prepare(request)
        with self._lock:
            self.connections += 1
            self._current = (socket, request)
        await socket.send_str(json.dumps({"type": "hello", "num_connections": 1,
                                          "debug_info": {"host": "applink-test", "build_number": 1,
                                                         "approximate_connection_time": 18060},
                                          "connection_info": {"app_id": "A0APP"}}))
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                with self._lock:
                    self.received.append(json.loads(message.data))
        return socket

    async def _send(self, data: str) -> None:
        assert self._current is not None, "no client is connected"
        await self._current[0].send_str(data)

    async def _drop(self) -> None:
        assert self._current is not None, "no client is connected"
        transport = self._current[1].transport
        assert transport is not None
        transport.abort()


_envelopes = itertools.count(1)


def command_envelope(command: str, words: str, *, user: str, respond_to: str) -> dict[str, Any]:
    """A slash command as Socket Mode delivers it: the form HTTP would post, as the payload."""
    payload = dict(parse_qsl(command_body(command, words, user=user, respond_to=respond_to)))
    return {"envelope_id": f"cmd-{next(_envelopes)}", "type": "slash_commands", "payload": payload,
            "accepts_response_payload": True}


def press_envelope(action_id: str, value: str, *, user: str, respond_to: str, message_ts: str) -> dict[str, Any]:
    """A button press as Socket Mode delivers it: the `payload=` JSON of HTTP, as the payload."""
    form = dict(parse_qsl(press_body(action_id, value, user=user, respond_to=respond_to, message_ts=message_ts)))
    return {"envelope_id": f"press-{next(_envelopes)}", "type": "interactive", "payload": json.loads(form["payload"]),
            "accepts_response_payload": False}


class Bot:
    """`opsloop socket` running as a process of its own; its log is kept for failure messages."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, database: str) -> None:
        self.process, self.log, self.database = process, log, database

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        return rows(self.database, query)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def wait(self, done: Any, what: str) -> None:
        try:
            wait_until(lambda: done() or self.process.poll() is not None, what=what)
        except AssertionError as error:
            raise AssertionError(f"{error}; opsloop socket's log:\n{self.tail()}") from None
        assert self.process.poll() is None, f"opsloop socket exited while waiting for {what}:\n{self.tail()}"


@pytest.fixture
def link() -> Iterator[SocketModeServer]:
    server = SocketModeServer().start()
    yield server
    server.stop()


@pytest.fixture
def mock() -> Iterator[MockSlack]:
    mock = MockSlack().start()
    yield mock
    mock.stop()


@pytest.fixture
def bot(tmp_path: Path, db_url: str, mock: MockSlack, link: SocketModeServer) -> Iterator[Bot]:
    mock.socket_url = link.url
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "OPSLOOP_DATABASE_URL": db_url,
           "OPSLOOP_CONFIG": str(write_policy(tmp_path, slack_policy())),
           "OPSLOOP_RUNBOOKS_DIR": str(ROOT / "runbooks"), "OPSLOOP_SLACK_API_URL": mock.api_url,
           "SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_APP_TOKEN": APP_TOKEN,
           "OPSLOOP_LOG_LEVEL": "WARNING", "OPSLOOP_SWEEP_INTERVAL": "0.1"}
    env.pop("SLACK_SIGNING_SECRET", None)  # Socket Mode needs none
    log = tmp_path / "socket.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "bot.cli", "socket"], env=env, cwd=tmp_path,
                                   stdout=sink, stderr=sink)
    running = Bot(process, log, db_url)
    try:
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cards(mock: MockSlack) -> list[Call]:
    return [c for c in posts(mock, "C0OPS") if "thread_ts" not in c.params]


def command_answer(ack: dict[str, Any], mock: MockSlack, envelope: dict[str, Any]) -> str:
    """A command's private answer: on the acknowledgement itself, or later through its response_url."""
    if "payload" in ack:
        assert ack["payload"]["response_type"] == "ephemeral"
        return str(ack["payload"]["text"])
    url = envelope["payload"]["response_url"].removeprefix(mock.url + "/")
    wait_until(lambda: any(c.method == url for c in mock.all_calls()), what="the answer via response_url")
    return next(str(c.params["text"]) for c in mock.all_calls() if c.method == url)


def test_commands_and_buttons_over_socket_mode_are_acknowledged_and_survive_a_dropped_connection(
    bot: Bot, mock: MockSlack, link: SocketModeServer
) -> None:
    bot.wait(lambda: link.connections == 1, "the first connection")
    [opened] = mock.ok_calls("apps.connections.open")
    assert opened.headers["Authorization"] == f"Bearer {APP_TOKEN}"  # the app-level token, not the bot's

    # what Slack never sends well-formed is ignored, and the connection goes on working
    for junk in ["not json", '{"envelope_id": "broken', {"type": "slash_commands", "payload": {}},
                 {"envelope_id": "odd-1", "type": "no_such_type", "payload": {}}]:
        link.send(junk)

    declare = command_envelope("/incident", 'declare "Checkout down" sev2', user=COMMANDER, respond_to=mock.url)
    link.send(declare)
    bot.wait(lambda: declare["envelope_id"] in link.acks(), "the command's acknowledgement")
    assert command_answer(link.acks()[declare["envelope_id"]], mock, declare) == (
        "Declared INC-1: Checkout down (sev2)")
    bot.wait(lambda: len(cards(mock)) == 1, "the incident card")
    [card] = cards(mock)
    assert fields(card)["Severity"] == "sev2" and fields(card)["State"] == "triggered"
    assert bot.rows("SELECT ref, state FROM work_items") == [("INC-1", "triggered")]

    press = press_envelope(*buttons(card)["Acknowledge"], user=RESPONDER, respond_to=mock.url,
                           message_ts=card.answer["ts"])
    link.send(press)
    bot.wait(lambda: press["envelope_id"] in link.acks(), "the press's acknowledgement")
    bot.wait(lambda: mock.ok_calls("chat.update"), "the card's update")
    [update] = mock.ok_calls("chat.update")
    assert (update.params["channel"], update.params["ts"]) == ("C0OPS", card.answer["ts"])
    assert fields(update)["State"] == "acknowledged"
    bot.wait(lambda: "INC-1 acknowledged — now acknowledged" in responses(mock), "the press's answer")
    assert bot.rows("SELECT ref, state FROM work_items") == [("INC-1", "acknowledged")]

    # the network drops the connection: the client asks for a new URL and connects again
    link.drop()
    bot.wait(lambda: link.connections == 2, "the second connection")
    assert len(mock.ok_calls("apps.connections.open")) == 2
    again = command_envelope("/incident", 'declare "Payments slow" sev3', user=COMMANDER, respond_to=mock.url)
    link.send(again)
    bot.wait(lambda: again["envelope_id"] in link.acks(), "the acknowledgement over the new connection")
    assert command_answer(link.acks()[again["envelope_id"]], mock, again) == "Declared INC-2: Payments slow (sev3)"
    assert bot.rows("SELECT ref, state FROM work_items ORDER BY id") == [
        ("INC-1", "acknowledged"), ("INC-2", "triggered")]

    # Slack asks for a fresh connection now and then: the client replaces it at once
    link.send({"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "applink-test"}})
    bot.wait(lambda: link.connections == 3, "the refreshed connection")
    assert len(mock.ok_calls("apps.connections.open")) == 3
    bot.wait(lambda: len(cards(mock)) == 2, "the second incident's card")
    second = cards(mock)[1]
    press_again = press_envelope(*buttons(second)["Acknowledge"], user=RESPONDER, respond_to=mock.url,
                                 message_ts=second.answer["ts"])
    link.send(press_again)
    bot.wait(lambda: press_again["envelope_id"] in link.acks(), "the acknowledgement after the refresh")
    bot.wait(lambda: bot.rows("SELECT state FROM work_items WHERE ref = 'INC-2'") == [("acknowledged",)],
             "INC-2 acknowledged")

    # every envelope was acknowledged exactly once; nothing else was (the junk was ignored)
    assert [m.get("envelope_id") for m in link.received] == [
        declare["envelope_id"], press["envelope_id"], again["envelope_id"], press_again["envelope_id"]]

    bot.process.terminate()  # as systemd or Kubernetes stop it: a clean exit
    assert bot.process.wait(timeout=PATIENCE) == 0, bot.tail()
