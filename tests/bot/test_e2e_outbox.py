"""Issue 15, end to end: no customer webhook can stall Slack, through `opsloop serve`.

Two customers' webhooks are real local servers: one drips its answer a byte a second for a minute
(and on until the test lets it go, so a loaded machine cannot end the drip early), the other answers
429 with `Retry-After: 1e308`. Incident cards are posted to the mock Slack while the first still
hangs (ordering: the drip has not finished when the card is there), and the second is retried after
the normal backoff instead of breaking the delivery pass.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from sqlmodel import col, select

from bot.bootstrap import Services
from bot.senders import outbound_senders
from bot.settings import Settings
from opsloop.models import OutboxMessage
from tests.bot import e2e
from tests.bot.e2e import buttons, posts, serve, slack_policy, wait_for, write_policy
from tests.bot.live_server import LiveServer
from tests.bot.mock_slack import Call, MockSlack
from tests.bot.slack_requests import command_body, press_body
from tests.support import PATIENCE, FakeClock, QuietHandler, local_server

COMMANDER = "U0RESP1"


class FarSide:
    """A customer's webhook endpoint on loopback: `drip` answers a byte a second for at least
    `seconds`, and on until `release` is set (at most PATIENCE); otherwise it answers 429 with
    `Retry-After: 1e308` at once."""

    def __init__(self, ca: trustme.CA, *, drip: bool, seconds: int = 60) -> None:
        self.requests = 0
        self.answering = threading.Event()
        self.finished = threading.Event()
        self.release = threading.Event()
        far = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.read_body()
                far.requests += 1
                if not drip:
                    self.send_response(429)
                    self.send_header("Retry-After", "1e308")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = int(PATIENCE)
                try:
                    self.wfile.write(f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n".encode())
                    far.answering.set()
                    for dripped in range(length):
                        if dripped >= seconds and far.release.is_set():
                            break
                        self.wfile.write(b".")
                        self.wfile.flush()
                        far.release.wait(1)  # a byte a second (sooner only once released)
                except OSError:
                    pass
                far.finished.set()

        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(tls)
        self.server = local_server(Handler, tls=tls)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def far_sides(ca: trustme.CA) -> Iterator[tuple[FarSide, FarSide]]:
    slow, hostile = FarSide(ca, drip=True), FarSide(ca, drip=False)
    yield slow, hostile
    slow.stop()
    hostile.stop()


@pytest.fixture
def outbox_serve(tmp_path: Path, slack_settings: Settings, clock: FakeClock, ca: trustme.CA,
                 far_sides: tuple[FarSide, FarSide], monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[tuple[Services, LiveServer]]:
    slow, hostile = far_sides
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)  # the customers' endpoints have certificates of the test's own CA
    monkeypatch.setattr(e2e, "outbound_senders", lambda settings: outbound_senders(settings, verify=trusted))
    catalog = tmp_path / "accounts.yml"
    catalog.write_text(f"- {{id: slowco, name: Slow Co, tier: enterprise, arr: 1000, webhook_url: '{slow.url}'}}\n"
                       f"- {{id: hostile, name: Hostile, tier: smb, arr: 1000, webhook_url: '{hostile.url}'}}\n")
    policy = slack_policy()
    policy["accounts"] = str(catalog)
    policy["audiences"] = {"customers": {"when": {"kinds": ["incident"], "severities": ["sev2"]},
                                         "events": ["start"], "from_address": "status@opsloop.example"}}
    # the hold is not what this test is about: customers' notices are drafts a second in, and still
    # reach a customer only once a person allowed notice.approve presses Send (issue 17)
    policy["loops"] = {"hold": "1s"}
    settings = slack_settings.model_copy(update={"config": write_policy(tmp_path, policy)})
    with serve(settings, clock) as running:
        yield running


def declare(server: LiveServer, mock: MockSlack, text: str) -> None:
    assert server.post(command_body("/incident", f"declare {text}", user=COMMANDER,
                                    respond_to=mock.url)).status_code == 200


def send_the_draft(server: LiveServer, mock: MockSlack, ref: str) -> None:
    """The commander presses Send on the customers' draft of `ref` in their DM, as Slack would."""
    def draft() -> Call | None:
        return next((c for c in posts(mock) if c.params.get("channel") != "C0OPS"
                     and str(c.params.get("text")).startswith(f"📝 Customer first notice for {ref} ")), None)
    server.settle(lambda: draft() is not None)  # the hold ends, the draft reaches its reviewers
    dm = draft()
    assert dm is not None
    send = buttons(dm)["Send"]
    assert server.post(press_body(*send, user=COMMANDER, respond_to=mock.url, channel=dm.answer["channel"],
                                  message_ts=dm.answer["ts"])).status_code == 200


def card_posted(mock: MockSlack, title: str) -> bool:
    return any(title in str(c.params.get("text")) for c in posts(mock, "C0OPS"))


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_dripping_customer_webhook_and_a_hostile_retry_after_hold_up_no_slack_card(
    outbox_serve: tuple[Services, LiveServer], mock_slack: MockSlack, far_sides: tuple[FarSide, FarSide]
) -> None:
    services, server = outbox_serve
    slow, hostile = far_sides
    declare(server, mock_slack, '"Slow Co exports fail" sev2 tenant:slowco')
    server.settle(lambda: card_posted(mock_slack, "Slow Co exports fail"))
    assert slow.requests == 0  # nothing reaches a customer before a person sends it
    send_the_draft(server, mock_slack, "INC-1")
    wait_for(lambda: slow.answering.is_set(), what="the slow webhook to start dripping")
    server.settle(lambda: card_posted(mock_slack, "Slow Co exports fail"))

    declare(server, mock_slack, '"Queue backlog" sev3')  # its card goes out while the webhook drips
    server.settle(lambda: card_posted(mock_slack, "Queue backlog"))
    assert not slow.finished.is_set()  # the far side is still hanging: the card did not wait for it

    declare(server, mock_slack, '"Hostile answers 429" sev2 tenant:hostile')
    send_the_draft(server, mock_slack, "INC-3")
    wait_for(lambda: hostile.requests >= 1, what="the hostile webhook")
    server.settle(lambda: card_posted(mock_slack, "Hostile answers 429"))

    def hostile_row() -> OutboxMessage | None:
        with services.db.transaction() as session:
            return session.exec(select(OutboxMessage).where(OutboxMessage.target == hostile.url)
                                .order_by(col(OutboxMessage.id))).first()

    # recorded, and tried again after the normal backoff (a clock can't add 1e308 s: it used to abort
    # the delivery pass); the fake clock moves a second at a time, so a second attempt means backoff
    server.settle(lambda: (row := hostile_row()) is not None and row.attempts >= 2)
    row = hostile_row()
    assert row is not None and "answered 429" in (row.last_error or "")
    assert not slow.finished.is_set()
