"""Email over a real SMTP server on loopback (aiosmtpd), and webhooks against respx."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import httpx
import pytest
import respx
from aiosmtpd.controller import Controller
from sqlmodel import col, select

from bot.bootstrap import Services
from bot.senders.email import SmtpSender
from bot.senders.webhook import WebhookSender
from opsloop.comms.models import NoticeDraft
from opsloop.models import OutboxMessage
from opsloop.outbox import DeliveryError, Dispatcher, PermanentDeliveryError
from opsloop.types import Severity
from tests.bot.processes import free_port
from tests.support import FakeClock

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # senders, not storage


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def mail_server(smtp_port: int) -> Iterator[Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    yield inbox
    controller.stop()


def dispatcher(services: Services, senders: dict[str, Any]) -> Dispatcher:
    return Dispatcher(services.db, senders, services.clock, prepare=services.cards.prepare_outbound)


def sent_from_review(services: Services, clock: FakeClock | None = None) -> None:
    """Customers hear nothing by themselves (issue 17): the hold ends (when a clock is given) and the
    commander, allowed notice.approve, presses Send on the one customer draft in review."""
    if clock is not None:
        clock.advance(minutes=5)
        services.sweeper.sweep()
    with services.db.transaction() as s:
        [draft] = s.exec(select(NoticeDraft).where(NoticeDraft.status == "pending")).all()
    services.commands.press("notice.send", str(draft.id), actor="U0RESP1")


def pump(d: Dispatcher, clock: FakeClock, rounds: int = 30) -> None:
    for _ in range(rounds):
        d.run_once()
        clock.advance(seconds=10)


@SQLITE_ONLY
def test_resolving_a_two_tenant_incident_emails_each_contact_about_its_own_tenant(
    services: Services, clock: FakeClock, mail_server: Inbox, smtp_port: int
) -> None:
    services.workitems.declare(actor="U0RESP1", title="EU primary down", severity=Severity.SEV1,
                               tenants=["acme", "globex"])
    sent_from_review(services, clock)  # the start notice
    services.workitems.act(actor="U0RESP1", ref="INC-1", action="resolve")
    sent_from_review(services)  # the resolution notice
    smtp = SmtpSender(f"smtp://127.0.0.1:{smtp_port}")
    pump(dispatcher(services, {"email": smtp}), clock, rounds=5)
    resolved = [m for m in mail_server.messages if m["Subject"].startswith("Resolved")]
    assert sorted(m["To"] for m in resolved) == ["it@globex.example", "ops@acme.example"]
    for mail in resolved:
        body = mail.get_payload()
        own, other = ("Acme Corp", "Globex") if mail["To"] == "ops@acme.example" else ("Globex", "Acme")
        assert own in body and other not in body
        assert mail["From"] == "status@opsloop.example"
    assert len(mail_server.messages) == 4  # start + resolution, per contact, once


@SQLITE_ONLY
def test_a_mail_server_that_is_down_gets_the_emails_once_it_is_back(
    services: Services, clock: FakeClock, smtp_port: int
) -> None:
    services.workitems.declare(actor="U0RESP1", title="Checkout down", severity=Severity.SEV1,
                               tenants=["acme"])
    sent_from_review(services, clock)
    services.workitems.act(actor="U0RESP1", ref="INC-1", action="resolve")
    sent_from_review(services)
    d = dispatcher(services, {"email": SmtpSender(f"smtp://127.0.0.1:{smtp_port}", timeout=2)})
    pump(d, clock, rounds=3)  # nobody listens on the port yet
    with services.db.transaction() as s:
        waiting = s.exec(select(OutboxMessage).where(OutboxMessage.transport == "email")).all()
    assert {m.status for m in waiting} == {"pending"}
    assert waiting[0].attempts >= 2 and waiting[1].attempts == 0  # in order: the resolution waits its turn
    assert "unreachable" in (waiting[0].last_error or "")
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        pump(d, clock, rounds=40)
    finally:
        controller.stop()
    assert sorted(m["Subject"] for m in inbox.messages) == [
        "Resolved: the problem affecting your service",
        "We are investigating a problem affecting your service"]
    with services.db.transaction() as s:
        item = services.workitems.lock(s, "INC-1")
        assert [loop.audience for loop in services.loops.open_loops(s, item)
                if loop.transport == "email"] == []


def test_smtp_refusals() -> None:
    with pytest.raises(Exception, match="smtp://host:port"):
        SmtpSender("http://mail.example")


@respx.mock
def test_webhooks_retry_honour_retry_after_and_keep_one_idempotency_key() -> None:
    route = respx.post("https://tickets.example/hook").mock(side_effect=[
        httpx.Response(503, headers={"Retry-After": "7"}), httpx.Response(200)])
    sender = WebhookSender(httpx.Client(), env={"TICKETS_URL": "https://tickets.example/hook"})
    message = OutboxMessage(key="loop:9:start:1", transport="webhook", target="env:TICKETS_URL", lane="x",
                            payload={"json": {"subject": "hi"}}, next_attempt_at=FakeClock().now(),
                            created_at=FakeClock().now())
    with pytest.raises(DeliveryError) as failure:
        sender.send(message, None)
    assert failure.value.retry_after == 7.0
    sender.send(message, None)
    keys = {call.request.headers["Idempotency-Key"] for call in route.calls}
    assert keys == {"loop:9:start:1"} and route.call_count == 2


@respx.mock
def test_webhook_refusals_are_permanent_and_urls_never_appear_in_errors() -> None:
    secret_url = "https://hooks.example/T0/B0/s3cr3t-token"
    respx.post(secret_url).mock(return_value=httpx.Response(404))
    sender = WebhookSender(httpx.Client(), env={"SUPPORT_HOOK": secret_url})
    message = OutboxMessage(key="k", transport="webhook", target="env:SUPPORT_HOOK", lane="x",
                            payload={"json": {}}, next_attempt_at=FakeClock().now(),
                            created_at=FakeClock().now())
    with pytest.raises(PermanentDeliveryError) as failure:
        sender.send(message, None)
    assert "s3cr3t" not in str(failure.value) and "hooks.example" in str(failure.value)
    unset = WebhookSender(httpx.Client(), env={})
    with pytest.raises(PermanentDeliveryError, match="SUPPORT_HOOK is not set"):
        unset.send(message, None)


@SQLITE_ONLY
@respx.mock
def test_a_customer_webhook_gets_public_facts_only(services: Services, clock: FakeClock, tmp_path) -> None:
    from opsloop.accounts import import_catalog
    catalog = tmp_path / "hooked.yml"
    catalog.write_text("- {id: acme, name: Acme Corp, tier: enterprise, arr: 480000, "
                       "contact_email: ops@acme.example, webhook_url: 'https://status.acme.example/in'}\n")
    import_catalog(services.db, clock, catalog, actor="test")
    route = respx.post("https://status.acme.example/in").mock(return_value=httpx.Response(204))
    services.workitems.declare(actor="U0RESP1", title="db-eu-1 OOM killed", severity=Severity.SEV1,
                               tenants=["acme"])
    sent_from_review(services, clock)
    pump(dispatcher(services, {"webhook": WebhookSender(httpx.Client())}), clock, rounds=3)
    [call] = route.calls
    body = call.request.content.decode()
    assert '"status":"investigating"' in body and '"tenant":"acme"' in body
    assert "db-eu-1" not in body and "INC-1" not in body
    with services.db.transaction() as s:
        [row] = s.exec(select(OutboxMessage).where(OutboxMessage.transport == "webhook")
                       .order_by(col(OutboxMessage.id))).all()
    assert row.status == "sent"
