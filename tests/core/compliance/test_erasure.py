"""Erasing a person removes them from every table, export and outbox row; the chain still verifies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel, col, select

from opsloop.accounts import import_catalog
from opsloop.comms.models import NoticeDraft
from opsloop.compliance import export
from opsloop.compliance.erasure import erase
from opsloop.compliance.models import AuditPersonal
from opsloop.core import Core
from opsloop.errors import InvalidInput, NotFound
from opsloop.loops.models import FeedbackLoop
from opsloop.models import Account, AuditEvent, OutboxMessage
from opsloop.outbox import CANCELLED, PENDING, SENT, Delivered, DeliveryError, Dispatcher
from tests.core.compliance.chain import verdict
from tests.support import ROOT, FakeClock

EMAIL = "ops@acme.example"  # acme's contact in the sample catalog
RESPONDER = "U0RESP1"


class Deliver:
    def send(self, message: OutboxMessage, parent: OutboxMessage | None) -> Delivered:
        if message.transport == "email" and "resolved" in message.payload.get("subject", "").lower():
            raise DeliveryError(f"mail server says: mailbox {message.target} full")
        return Delivered(external_id="1", external_target=message.target)


def everything(services: Core) -> list[tuple[str, str]]:
    """(table, row) of every row of every table, as text: a scan that does not trust the code under test."""
    rows = []
    with services.db.engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for row in connection.execute(text(f'SELECT * FROM "{table.name}"')):
                rows.append((table.name, " | ".join(str(v) for v in row)))
    return rows


def holding(services: Core, needle: str) -> list[tuple[str, str]]:
    return [(table, row[:200]) for table, row in everything(services) if needle.lower() in row.lower()]


def send_draft(services: Core) -> None:
    """The commander presses Send on the customer notice waiting in review."""
    with services.db.transaction() as session:
        [draft] = session.exec(select(NoticeDraft).where(NoticeDraft.status == "pending")).all()
    services.commands.press("notice.send", str(draft.id), actor=RESPONDER)


def story(services: Core, clock: FakeClock) -> None:
    """A sev1 at acme: the customer's contact is emailed, named in the title and a note, mails bounce."""
    handle = services.commands.handle
    handle("/incident", f'declare "Exports fail for {EMAIL.upper()} and others" sev1 tenant:acme', actor=RESPONDER)
    handle("/incident", f'update INC-1 "called {EMAIL}, they confirm"', actor=RESPONDER)
    clock.advance(minutes=5)  # the hold is over: the customer's first notice is drafted, and sent
    services.sweeper.sweep()
    send_draft(services)
    Dispatcher(services.db, {t: Deliver() for t in ("chat", "email", "webhook")}, services.clock,
               prepare=services.cards.prepare_outbound).drain()
    handle("/incident", "resolve INC-1 rolled back", actor=RESPONDER)
    send_draft(services)
    Dispatcher(services.db, {t: Deliver() for t in ("chat", "email", "webhook")}, services.clock,
               prepare=services.cards.prepare_outbound).drain()


def test_after_erasing_a_contact_nothing_holds_it_and_the_chain_verifies(services: Core,
                                                                         clock: FakeClock) -> None:
    story(services, clock)
    assert {table for table, _ in holding(services, EMAIL)} >= {
        "accounts", "outbox", "outbox_attempts", "feedback_loops", "work_items", "timeline_events",
        "audit_personal"}
    with services.db.transaction() as session:
        undelivered = session.exec(select(OutboxMessage).where(OutboxMessage.target == EMAIL,
                                                               OutboxMessage.status == PENDING)).all()
    assert len(undelivered) == 1  # the resolution notice, bouncing

    result = erase(services.db, services.clock, actor="system:cli", contact="OPS@Acme.Example",
                   accounts_file=services.policy.accounts_path)

    assert holding(services, EMAIL) == []
    with services.db.snapshot() as session:
        lines = list(export.lines(session))
    assert not any(EMAIL in line.lower() for line in lines)
    assert verdict(services.db).ok
    erased = [json.loads(line) for line in lines if '"[erased]"' in line]
    assert {e["action"] for e in erased} >= {"account.created", "incident.created", "incident.update"}
    assert erased[0]["personal_data"]["/after/contact_email"] == "[erased]"
    with services.db.transaction() as session:
        message = session.get(OutboxMessage, undelivered[0].id)
        event = session.get(AuditEvent, result.seq)
        account = session.get(Account, "acme")
        loops = session.exec(select(FeedbackLoop).where(FeedbackLoop.audience == "customers")).all()
        sent_to_them = session.exec(select(OutboxMessage).where(OutboxMessage.transport == "email",
                                                                OutboxMessage.status == SENT)).all()
    assert message is not None and (message.status, message.target, message.payload) == (
        CANCELLED, "[erased]", {"erased": True})
    assert result.cancelled == 1
    assert result.erased_values == 3  # the contact in account.created, the title, the update's text
    assert account is not None and account.contact_email is None
    assert [loop.target for loop in loops] == ["[erased]"]
    assert sent_to_them and all(m.payload == {"erased": True} for m in sent_to_them)  # bodies gone too
    assert event is not None and event.action == "privacy.erased" and event.subject == "privacy:contact"
    assert EMAIL not in json.dumps(event.after) and event.after is not None
    assert event.after["erased"] == result.erased_values and event.after["cancelled"] == 1
    assert result.remaining == []
    assert result.sources == [f"{ROOT / 'accounts.yml'}: account acme still lists this contact; remove it there, "
                              "or it comes back with the next import of that file (or a start on an empty catalog)"]


def test_a_tenant_erasure_reaches_every_contact_the_account_has_held(services: Core, tmp_path: Path) -> None:
    services.commands.handle("/incident", 'declare "Login broken" sev1 tenant:acme', actor=RESPONDER)
    catalog = tmp_path / "accounts.yml"
    catalog.write_text((ROOT / "accounts.yml").read_text().replace(EMAIL, "new-ops@acme.example"))
    import_catalog(services.db, services.clock, catalog, actor="system:test")  # the contact changed
    result = erase(services.db, services.clock, actor="system:cli", tenant="acme", accounts_file=catalog)
    assert result.contacts == 2
    assert holding(services, EMAIL) == [] and holding(services, "new-ops@acme.example") == []
    assert holding(services, "it@globex.example") != []  # another tenant's contact stays
    assert verdict(services.db).ok
    assert result.sources == [f"{catalog}: account acme still lists this contact; remove it there, or it comes "
                              "back with the next import of that file (or a start on an empty catalog)"]
    with services.db.transaction() as session:
        event = session.get(AuditEvent, result.seq)
        cleared = session.exec(select(AuditPersonal).where(col(AuditPersonal.erased_in) == result.seq)).all()
    assert event is not None and event.subject == "account:acme" and event.after is not None
    assert event.after["scope"] == "tenant" and len(cleared) == result.erased_values >= 3


def test_erasure_refuses_what_is_not_a_person(services: Core) -> None:
    with pytest.raises(InvalidInput, match="not an email address"):
        erase(services.db, services.clock, actor="system:cli", contact="DROP TABLE accounts")
    with pytest.raises(NotFound, match="no account 'nope'"):
        erase(services.db, services.clock, actor="system:cli", tenant="nope")
    with pytest.raises(InvalidInput, match="name one person"):
        erase(services.db, services.clock, actor="system:cli")
    assert verdict(services.db).ok and verdict(services.db).checked == 3  # the catalog import only: nothing changed


def test_an_unknown_contact_is_still_recorded_as_a_handled_request(services: Core) -> None:
    result = erase(services.db, services.clock, actor="system:cli", contact="nobody@nowhere.example")
    assert (result.erased_values, dict(result.rows), result.cancelled, result.sources) == (0, {}, 0, [])
    with services.db.transaction() as session:
        event: Any = session.get(AuditEvent, result.seq)
    assert event.action == "privacy.erased" and event.after["erased"] == 0
    assert verdict(services.db).ok
