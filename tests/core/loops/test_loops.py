"""Feedback loops: who hears what, when, once; closed when the resolution notice is delivered."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import col, select

from opsloop.comms.models import NoticeDraft
from opsloop.core import Core
from opsloop.models import OutboxMessage
from opsloop.outbox import Delivered, Dispatcher
from opsloop.types import Severity
from tests.support import FakeClock

COMMANDER = "U0RESP1"


class Collect:
    """A sender per transport that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[OutboxMessage] = []

    def send(self, message: OutboxMessage, parent: OutboxMessage | None) -> Delivered:
        self.sent.append(message)
        return Delivered(external_id=str(len(self.sent)))


def deliver(services: Core) -> dict[str, Collect]:
    senders = {"chat": Collect(), "email": Collect(), "webhook": Collect()}
    Dispatcher(services.db, senders, services.clock, prepare=services.cards.prepare_outbound).drain()
    return senders


def notices(services: Core, audience_prefix: str = "loop:") -> list[OutboxMessage]:
    with services.db.transaction() as s:
        return list(s.exec(select(OutboxMessage).where(col(OutboxMessage.key).startswith(audience_prefix))
                           .order_by(col(OutboxMessage.id))))


def send_customer_draft(services: Core, clock: FakeClock | None = None) -> None:
    """The hold ends (when a clock is given) and a commander presses Send on the pending draft."""
    if clock is not None:
        clock.advance(minutes=5)
        services.sweeper.sweep()
    with services.db.transaction() as s:
        [draft] = s.exec(select(NoticeDraft).where(NoticeDraft.status == "pending")).all()
    services.commands.press("notice.send", str(draft.id), actor=COMMANDER)


def test_a_sev1_touching_two_tenants_tells_each_audience_once(services: Core, clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="EU database primary down", severity=Severity.SEV1,
                               tenants=["acme", "globex"])
    internal = {(m.transport, m.target) for m in notices(services)}  # internal audiences: at once
    assert internal == {("chat", "U0SALES1"), ("chat", "U0SALES2"), ("chat", "C0SUPPORT"), ("chat", "C0PRODUCT")}
    send_customer_draft(services, clock)  # customers: after the hold, when a person sends it
    rows = notices(services)
    by = {(m.transport, m.target) for m in rows}
    assert ("email", "ops@acme.example") in by and ("email", "it@globex.example") in by
    assert len(rows) == len(by)  # one start notice per recipient
    acme = next(m for m in rows if m.target == "ops@acme.example")
    assert acme.payload["subject"] == "We are investigating a problem affecting your service"
    assert "Acme Corp" in acme.payload["body"] and "Globex" not in acme.payload["body"]
    assert "EU database primary down" not in acme.payload["body"]  # no internal detail for customers
    sales = next(m for m in rows if m.target == "U0SALES1")
    assert "Acme Corp" in sales.payload["message"]["text"] and "Globex" not in str(sales.payload)


def test_resolution_closes_loops_once_delivered_and_status_shows_open_ones(
    services: Core, clock: FakeClock
) -> None:
    services.workitems.declare(actor=COMMANDER, title="Checkout down", severity=Severity.SEV1,
                               tenants=["acme"])
    send_customer_draft(services, clock)
    deliver(services)
    assert "Open feedback loops" in services.commands.handle("/incident", "status INC-1", actor=COMMANDER).text
    clock.advance(minutes=30)
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="resolve")
    send_customer_draft(services)
    with services.db.transaction() as s:
        item = services.workitems.lock(s, "INC-1")
        assert len(services.loops.open_loops(s, item)) == 4  # resolution notices queued, not delivered
    sent = deliver(services)
    emails = sent["email"].sent
    assert [m.payload["subject"] for m in emails] == ["Resolved: the problem affecting your service"]
    status = services.commands.handle("/incident", "status INC-1", actor=COMMANDER).text
    assert "Open feedback loops" not in status
    assert ("Loops", "0 of 4 open") in services.cards.of("INC-1").fields


def test_cadence_notices_go_out_while_open_and_stop_at_resolution(services: Core, clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="Slow API", severity=Severity.SEV2, tenants=["acme"])
    send_customer_draft(services, clock)
    clock.advance(minutes=54)
    assert services.loops.sweep() == 0
    clock.advance(minutes=1)
    assert services.loops.sweep() == 1  # customers: every hour (a draft)
    send_customer_draft(services)
    clock.advance(hours=1)
    assert services.loops.sweep() == 2  # customers again, and sales (every 2 h)
    send_customer_draft(services)
    cadence = [m for m in notices(services) if ":cadence:" in m.key]
    assert sorted(m.transport for m in cadence) == ["chat", "email", "email"]
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="resolve")
    clock.advance(hours=5)
    assert services.loops.sweep() == 0


def test_adding_a_tenant_opens_its_loops_and_unknown_ones_are_refused(services: Core,
                                                                     clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="Export broken", severity=Severity.SEV2, tenants=["acme"])
    reply = services.commands.handle("/incident", "tenants INC-1 add globex", actor=COMMANDER)
    assert reply.text == "INC-1: now affects acme, globex"
    send_customer_draft(services, clock)  # within the hold: the one first notice goes to both
    assert any(m.target == "it@globex.example" for m in notices(services))
    from opsloop.errors import NotFound
    with pytest.raises(NotFound, match="unknown tenant nobody"):
        services.commands.handle("/incident", "tenants INC-1 add nobody", actor=COMMANDER)


def test_loops_left_open_are_reported_to_the_comms_owner_once(services: Core, clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="Checkout down", severity=Severity.SEV1, tenants=["acme"])
    services.workitems.assign(actor=COMMANDER, ref="INC-1", comms_owner="U0COMMS")
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="resolve")  # notices queued, never delivered
    clock.advance(hours=23)
    services.loops.sweep()
    assert notices(services, "loops-overdue:") == []
    clock.advance(hours=2)
    services.loops.sweep()
    services.loops.sweep()
    [report] = notices(services, "loops-overdue:")
    assert report.target == "U0COMMS"
    assert "feedback loop(s) are still open" in report.payload["message"]["text"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_product_priority_fires_at_its_threshold_and_not_before(services: Core,
                                                                 tmp_path: Any) -> None:
    from opsloop.accounts import import_catalog
    catalog = tmp_path / "more.yml"
    catalog.write_text("- {id: umbrella, name: Umbrella, tier: smb, arr: 1000}\n"
                       "- {id: hooli, name: Hooli, tier: smb, arr: 2000}\n")
    import_catalog(services.db, services.clock, catalog, actor="test")
    for tenant in ("umbrella", "hooli"):
        services.workitems.open_escalation(actor="U0CSM1", title="exports fail", tenants=[tenant],
                                           labels={"theme": "exports"})
    assert notices(services, "priority:") == []  # 2 tenants, 3000 ARR: below both thresholds
    services.workitems.open_escalation(actor="U0CSM1", title="exports fail", tenants=["initech"],
                                       labels={"theme": "exports"})
    [packet] = notices(services, "priority:")
    assert packet.target == "C0PRODUCT"
    message = packet.payload["message"]
    assert dict(message["fields"])["Tenants"] == "3"
    assert "Hooli" in message["body"] and "ESC-1, ESC-2, ESC-3" in message["body"]
    services.workitems.open_escalation(actor="U0CSM1", title="exports fail", tenants=["acme"],
                                       labels={"theme": "exports"})
    assert len(notices(services, "priority:")) == 1  # once per theme per window


def test_priority_by_arr_alone(services: Core) -> None:
    services.workitems.open_escalation(actor="U0CSM1", title="SSO login loops", tenants=["acme"],
                                       labels={"theme": "sso"})
    assert notices(services, "priority:") == []  # 480k < 500k
    services.workitems.open_escalation(actor="U0CSM1", title="SSO login loops", tenants=["globex"],
                                       labels={"theme": "sso"})
    assert len(notices(services, "priority:")) == 1  # 576k >= 500k with only 2 tenants
