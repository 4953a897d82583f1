"""Issue 15, attacks on POST /slack/events through the real server (uvicorn + the real Bolt app).

Nothing unverified acts: whatever is wrong with a request's signature headers, it is answered 401
before any listener or error handler runs (so nothing is ever posted to a `response_url` from an
unverified body), and so is a correctly signed request whose timestamp is over five minutes off. A
signed request sent again is answered 200 and has no second effect, on one server and delivered to
two replicas on one PostgreSQL database at the same moment; Slack's own retries are ignored.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlmodel import func, select

from bot.bootstrap import Services, bootstrap
from bot.http import create_http_app
from bot.settings import Settings
from bot.slack.wiring import wire_slack
from opsloop.models import AuditEvent, OutboxMessage, WorkItem
from tests.bot.conftest import SIGNING_SECRET
from tests.bot.live_server import LiveServer
from tests.bot.mock_slack import MockSlack
from tests.bot.slack_requests import FORM, command_body, event_body, sign
from tests.support import FakeClock
from tests.support import wait_until as wait_for

COMMANDER = "U0RESP1"
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
POSTGRES_ONLY = pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                                        indirect=True)


def counts(services: Services) -> tuple[int, int, int]:
    with services.db.transaction() as session:
        return (session.exec(select(func.count()).select_from(WorkItem)).one(),
                session.exec(select(func.count()).select_from(OutboxMessage)).one(),
                session.exec(select(func.count()).select_from(AuditEvent)).one())


def answered(answer: httpx.Response, mock: MockSlack, nth: int = 1) -> str:
    """A command's private answer: in the acknowledgement itself, or later through response_url."""
    assert answer.status_code == 200
    if answer.text:
        return str(answer.json()["text"])
    wait_for(lambda: len(responses(mock)) >= nth)
    return responses(mock)[nth - 1]


def responses(mock: MockSlack) -> list[str]:
    return [str(c.params.get("text")) for c in mock.all_calls() if c.method.startswith("respond/")]


def raw_post(server: LiveServer, headers: dict[str, str], body: str) -> int:
    """POST /slack/events byte for byte as given (httpx refuses to send some of these headers)."""
    assert server.client is not None and server.client.base_url.port is not None
    lines = ["POST /slack/events HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {FORM}",
             f"Content-Length: {len(body.encode())}", "Connection: close",
             *(f"{name}: {value}" for name, value in headers.items())]
    with socket.create_connection(("127.0.0.1", server.client.base_url.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n" + body).encode())
        answer = b""
        while b"\r\n" not in answer:
            more = sock.recv(4096)
            if not more:
                break
            answer += more
    return int(answer.split(b" ", 2)[1])


def now() -> str:
    return str(int(time.time()))


FORGED = "v0=" + "0" * 64
# every way the two signature headers can be wrong; the body names a response_url the error handler
# would post to, so "nothing happened" includes "nothing was posted there"
BAD_HEADERS = {
    "non-numeric timestamp": {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": FORGED},
    "empty timestamp": {"X-Slack-Request-Timestamp": "", "X-Slack-Signature": FORGED},
    "exponent timestamp": {"X-Slack-Request-Timestamp": "1.7e9", "X-Slack-Signature": FORGED},
    "padded timestamp": {"X-Slack-Request-Timestamp": f" {now()} ", "X-Slack-Signature": FORGED},
    "underscored timestamp": {"X-Slack-Request-Timestamp": "1_700_000_000", "X-Slack-Signature": FORGED},
    "arabic-indic digits": {"X-Slack-Request-Timestamp": "\u0661\u0667" + "\u0660" * 8, "X-Slack-Signature": FORGED},
    "huge timestamp": {"X-Slack-Request-Timestamp": "9" * 400, "X-Slack-Signature": FORGED},
    "negative timestamp": {"X-Slack-Request-Timestamp": "-1", "X-Slack-Signature": FORGED},
    "no timestamp": {"X-Slack-Signature": FORGED},
    "no signature": {"X-Slack-Request-Timestamp": now()},
    "empty signature": {"X-Slack-Request-Timestamp": now(), "X-Slack-Signature": ""},
    "not hex": {"X-Slack-Request-Timestamp": now(), "X-Slack-Signature": "v0=" + "z" * 64},
    "other version": {"X-Slack-Request-Timestamp": now(), "X-Slack-Signature": "v1=" + "0" * 64},
    "wrong signature": {"X-Slack-Request-Timestamp": now(), "X-Slack-Signature": FORGED},
    "nothing": {},
}


@SQLITE_ONLY
@pytest.mark.parametrize("headers", list(BAD_HEADERS.values()), ids=list(BAD_HEADERS))
def test_a_request_failing_verification_gets_401_before_any_listener_or_error_handler(
    headers: dict[str, str], server: LiveServer, mock_slack: MockSlack, slack_services: Services
) -> None:
    before = counts(slack_services)
    body = command_body("/incident", 'declare "forged"', user=COMMANDER, respond_to=mock_slack.url)
    assert raw_post(server, headers, body) == 401
    time.sleep(0.3)  # anything the app would have started (an error report, a follow-up) has had time
    assert mock_slack.all_calls() == []  # in particular nothing went to the body's response_url
    assert counts(slack_services) == before


@SQLITE_ONLY
@pytest.mark.parametrize("off", [-301, -3600, 301], ids=["5 min 1 s old", "an hour old", "5 min 1 s ahead"])
def test_a_correctly_signed_request_with_a_stale_timestamp_gets_401_before_any_listener(
    off: int, server: LiveServer, mock_slack: MockSlack, slack_services: Services
) -> None:
    """Signed with the real secret, over its own timestamp and body: only the timestamp is out of Slack's
    five minutes (a captured request replayed later), and that alone refuses it."""
    before = counts(slack_services)
    body = command_body("/incident", 'declare "captured and replayed later"', user=COMMANDER,
                        respond_to=mock_slack.url)
    assert raw_post(server, sign(body, SIGNING_SECRET, int(time.time()) + off), body) == 401
    time.sleep(0.3)  # anything the app would have started (an error report, a follow-up) has had time
    assert mock_slack.all_calls() == []
    assert counts(slack_services) == before
    # the same request signed now is acted on: the timestamp was the only thing wrong
    assert raw_post(server, sign(body, SIGNING_SECRET), body) == 200
    wait_for(lambda: counts(slack_services)[0] == before[0] + 1)


@SQLITE_ONLY
def test_a_replayed_command_is_answered_200_and_has_no_second_effect(
    server: LiveServer, mock_slack: MockSlack, slack_services: Services
) -> None:
    body = command_body("/incident", 'declare "Replayed checkout outage" sev2', user=COMMANDER,
                        respond_to=mock_slack.url)
    headers = {"Content-Type": FORM, **sign(body, SIGNING_SECRET)}
    assert server.client is not None
    first = server.client.post("/slack/events", content=body, headers=headers)
    assert answered(first, mock_slack).startswith("Declared INC-1")
    after_first = counts(slack_services)
    again = server.client.post("/slack/events", content=body, headers=headers)
    assert (again.status_code, again.text) == (200, "")
    time.sleep(0.3)
    assert counts(slack_services) == after_first
    assert after_first[0] == 1


@SQLITE_ONLY
def test_distinct_requests_are_never_taken_for_replays(
    server: LiveServer, mock_slack: MockSlack, slack_services: Services
) -> None:
    stamp = int(time.time())
    first = command_body("/incident", 'declare "First" sev3', user=COMMANDER, respond_to=mock_slack.url)
    second = command_body("/incident", 'declare "Second" sev3', user=COMMANDER, respond_to=mock_slack.url)
    # the same body typed twice, a second apart, is two requests too
    server.post(first, timestamp=stamp)
    server.post(second, timestamp=stamp)  # the same second, another body
    server.post(first, timestamp=stamp - 1)  # the same body, another second
    wait_for(lambda: counts(slack_services)[0] == 3)


@SQLITE_ONLY
def test_slacks_own_retries_of_an_event_are_answered_200_and_ignored(
    server: LiveServer, mock_slack: MockSlack
) -> None:
    body = event_body({"type": "app_mention", "user": COMMANDER, "text": "<@U0BOT> help",
                       "channel": "C0OPS", "ts": "1700000000.000100"})
    assert server.client is not None
    retry = server.client.post("/slack/events", content=body, headers={
        "Content-Type": "application/json", "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout",
        **sign(body, SIGNING_SECRET)})
    assert (retry.status_code, retry.text) == (200, "")
    time.sleep(0.3)
    assert mock_slack.all_calls("chat.postMessage") == []
    # the same event as a first delivery is answered (the retry was ignored, not the event kind)
    assert server.post(body).status_code == 200
    wait_for(lambda: len(mock_slack.ok_calls("chat.postMessage")) == 1)


@contextmanager
def replica(settings: Settings, clock: FakeClock) -> Iterator[tuple[Services, LiveServer]]:
    """One `opsloop serve` with services and a Bolt app of its own, on the settings' database."""
    services = bootstrap(settings, clock=clock)
    try:
        dispatcher = wire_slack(services, idle=0.05)
        live = LiveServer(create_http_app(services, settings, dispatcher=dispatcher), dispatcher=dispatcher,
                          clock=clock, secret=SIGNING_SECRET).start()
        try:
            yield services, live
        finally:
            live.stop()
    finally:
        services.db.dispose()


@pytest.fixture
def replicas(slack_settings: Settings, clock: FakeClock) -> Iterator[tuple[Services, LiveServer, LiveServer]]:
    """Two replicas on one database."""
    with replica(slack_settings, clock) as (services, one), replica(slack_settings, clock) as (_, other):
        yield services, one, other


@pytest.mark.slow
@POSTGRES_ONLY
def test_a_request_delivered_to_two_replicas_at_once_on_postgresql_has_exactly_one_effect(
    replicas: tuple[Services, LiveServer, LiveServer], mock_slack: MockSlack
) -> None:
    services, one, other = replicas
    assert one.client is not None and other.client is not None
    rounds = 6
    titles = [f"Replayed across replicas {n}" for n in range(rounds)]
    acked = 0
    for title in titles:
        body = command_body("/incident", f'declare "{title}" sev2', user=COMMANDER, respond_to=mock_slack.url)
        headers = {"Content-Type": FORM, **sign(body, SIGNING_SECRET)}
        start = threading.Barrier(2)
        answers: dict[int, httpx.Response] = {}

        def deliver(n: int, client: httpx.Client, body: str = body, headers: dict[str, str] = headers,
                    start: threading.Barrier = start, answers: dict[int, httpx.Response] = answers) -> None:
            start.wait(timeout=10)  # both replicas get the same signed request at the same moment
            answers[n] = client.post("/slack/events", content=body, headers=headers)

        threads = [threading.Thread(target=deliver, args=(n, client)) for n, client in
                   enumerate((one.client, other.client))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(answer.status_code for answer in answers.values()) == [200, 200]
        said = [answer.json()["text"] for answer in answers.values() if answer.text]
        assert len(said) <= 1 and all(text.startswith("Declared") for text in said)  # a replay's ack is empty
        acked += len(said)
    wait_for(lambda: counts(services)[0] == rounds)
    # each declaration answered once: in its acknowledgement or later through its response_url
    wait_for(lambda: acked + sum(1 for text in responses(mock_slack) if text.startswith("Declared")) >= rounds)
    time.sleep(0.3)  # a second effect, had either replica started one, has had time
    assert acked + sum(1 for text in responses(mock_slack) if text.startswith("Declared")) == rounds
    with services.db.transaction() as session:
        declared = Counter(session.exec(select(WorkItem.title)).all())
    assert declared == Counter(titles)  # each request acted on once, by one replica or the other
    # and either replica acts on requests of its own
    fresh = command_body("/incident", 'declare "Second replica" sev3', user=COMMANDER, respond_to=mock_slack.url)
    other.post(fresh)
    wait_for(lambda: counts(services)[0] == rounds + 1)


@pytest.mark.slow
@SQLITE_ONLY
def test_a_request_replayed_after_a_restart_on_sqlite_has_no_effect(
    slack_settings: Settings, clock: FakeClock, mock_slack: MockSlack
) -> None:
    body = command_body("/incident", 'declare "Before the restart" sev2', user=COMMANDER,
                        respond_to=mock_slack.url)
    headers = {"Content-Type": FORM, **sign(body, SIGNING_SECRET)}
    for life in ("first", "second"):  # the same database file, the server started twice
        with replica(slack_settings, clock) as (services, live):
            assert live.client is not None
            answer = live.client.post("/slack/events", content=body, headers=headers)
            if life == "first":
                assert answered(answer, mock_slack).startswith("Declared INC-1")
            else:
                assert (answer.status_code, answer.text) == (200, "")
                time.sleep(0.3)
                assert counts(services)[0] == 1
