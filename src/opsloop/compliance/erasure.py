"""Erasing a person (GDPR Art. 17): `opsloop privacy erase --contact EMAIL | --tenant ID`.

In one transaction:
1. messages *to* the person that were not delivered are cancelled, and every
   message to them loses its body and recipient;
2. feedback loops that reached them lose their target, accounts their contact;
3. every other table is scrubbed of the email (`scrub`): titles, timeline
   lines, alert labels, delivery errors, anything a feature stored;
4. the sealed audit values that hold it are erased: salt and value cleared,
   the commitment left in the chain — which therefore still verifies;
5. a `privacy.erased` audit event records how many values were cleared (and a
   digest of which) and how many rows each table lost — never the value.

`--tenant ID` erases every contact the account has held: its contact now, the
ones its own audit events and its customer loops name. The account row stays
(its id, tier and ARR are business records). Afterwards the command says what
it could not remove (hashed audit content written before personal data was
sealed, pinned runbooks) and which configured source (the policy's accounts
file) still lists the person, since the next start would import them again.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.accounts import read_catalog
from opsloop.clock import Clock
from opsloop.compliance import scrub
from opsloop.compliance.models import AuditPersonal
from opsloop.compliance.personal import erasure_digest
from opsloop.db import Database
from opsloop.errors import ConfigError, InvalidInput, NotFound
from opsloop.loops.models import FeedbackLoop
from opsloop.models import Account, AuditEvent, OutboxMessage
from opsloop.outbox import CANCELLED, PENDING

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
ACTION = "privacy.erased"


@dataclass
class Erasure:
    seq: int  # the privacy.erased audit event
    contacts: int  # how many distinct emails were erased
    erased_values: int  # sealed audit values cleared
    rows: Counter[str] = field(default_factory=Counter)  # table -> rows changed
    cancelled: int = 0  # undelivered messages to the person
    remaining: list[str] = field(default_factory=list)  # places it could not be removed from
    sources: list[str] = field(default_factory=list)  # configured sources that still list the person


def erase(db: Database, clock: Clock, *, actor: str, contact: str | None = None, tenant: str | None = None,
          accounts_file: Path | None = None) -> Erasure:
    if (contact is None) == (tenant is None):
        raise InvalidInput("name one person: --contact EMAIL or --tenant ID")
    if contact is not None and (len(contact) > 254 or not EMAIL.fullmatch(contact.strip())):
        raise InvalidInput(f"not an email address: {contact[:80]!r}")
    now = clock.now()
    with db.transaction() as session:
        audit.lock_chain(session)
        if tenant is not None:
            needles, subject = _tenant_contacts(session, tenant), f"account:{tenant}"
        else:
            assert contact is not None
            needles, subject = [contact.strip().lower()], "privacy:contact"
        result = Erasure(seq=0, contacts=len(needles), erased_values=0)
        if needles:
            result.cancelled = _outbox(session, needles, result.rows)
            _loops(session, needles, result.rows)
            _accounts(session, needles, result.rows)
            result.rows.update(scrub.scrub(session, needles))
            sealed = _sealed(session, needles, now)
        else:
            sealed = []
        pairs = [(row.seq, row.pointer) for row in sealed]
        result.erased_values = len(pairs)
        event = audit.record(session, at=now, actor=actor, action=ACTION, subject=subject, after={
            "scope": "tenant" if tenant is not None else "contact", "contacts": len(needles),
            "erased": len(pairs), "erased_digest": erasure_digest(pairs),
            "rows": dict(sorted(result.rows.items())), "cancelled": result.cancelled})
        result.seq = event.seq
        for row in sealed:
            row.erased_in = event.seq  # the erasure that accounts for the cleared value
            session.add(row)
        session.flush()
        result.remaining = [place.describe() for place in scrub.find(session, needles)] if needles else []
    result.sources = _sources(accounts_file, needles)
    return result


def _tenant_contacts(session: Session, tenant: str) -> list[str]:
    account = session.get(Account, tenant, with_for_update=True)
    if account is None:
        raise NotFound(f"no account {tenant!r} in the catalog")
    emails = {account.contact_email} if account.contact_email else set()
    emails.update(session.exec(select(FeedbackLoop.target).where(
        FeedbackLoop.tenant_id == tenant, FeedbackLoop.transport == "email")))
    # every contact the account's own audit events name (e.g. the one before an update)
    sealed = session.exec(select(AuditPersonal.value)
                          .join(AuditEvent, col(AuditEvent.seq) == col(AuditPersonal.seq))
                          .where(AuditEvent.subject == f"account:{tenant}",
                                 col(AuditPersonal.pointer).like("%/contact_email"),
                                 col(AuditPersonal.value).is_not(None)))
    emails.update(value.strip('"') for value in sealed if value)
    return sorted({e.lower() for e in emails if e and EMAIL.fullmatch(e)})


def _outbox(session: Session, needles: list[str], rows: Counter[str]) -> int:
    """Cancel what was still to be sent to the person; take body and recipient off every message to them."""
    messages = session.exec(select(OutboxMessage).where(func.lower(OutboxMessage.target).in_(needles))).all()
    cancelled = 0
    for message in messages:
        if message.status == PENDING:
            message.status, message.leased_until = CANCELLED, None
            cancelled += 1
        message.target = message.external_target = scrub.ERASED
        message.lane = f"{message.transport}:{scrub.ERASED}"
        message.payload, message.last_error = {"erased": True}, None
        session.add(message)
        rows["outbox"] += 1
    return cancelled


def _loops(session: Session, needles: list[str], rows: Counter[str]) -> None:
    loops = session.exec(select(FeedbackLoop).where(func.lower(FeedbackLoop.target).in_(needles))).all()
    for loop in loops:
        taken = session.exec(select(FeedbackLoop.id).where(
            FeedbackLoop.work_item_id == loop.work_item_id, FeedbackLoop.audience == loop.audience,
            FeedbackLoop.tenant_id == loop.tenant_id, FeedbackLoop.transport == loop.transport,
            FeedbackLoop.target == scrub.ERASED)).first()
        # (item, audience, tenant, transport, target) is unique: a second erased contact of one loop
        loop.target = scrub.ERASED if taken is None else f"{scrub.ERASED} #{loop.id}"
        session.add(loop)
        session.flush()
        rows["feedback_loops"] += 1


def _accounts(session: Session, needles: list[str], rows: Counter[str]) -> None:
    for account in session.exec(select(Account).where(func.lower(Account.contact_email).in_(needles))):
        account.contact_email = None  # no email goes to a contact that is not there
        session.add(account)
        rows["accounts"] += 1
    session.flush()


def _sealed(session: Session, needles: list[str], now: datetime) -> list[AuditPersonal]:
    table = AuditPersonal.__table__  # type: ignore[attr-defined]
    live = list(session.exec(select(AuditPersonal).where(
        scrub.matching(table, table.c.value, needles), col(AuditPersonal.value).is_not(None))))
    for row in live:
        row.salt = row.value = None
        row.erased_at = now
        session.add(row)
    session.flush()
    return live


def _sources(accounts_file: Path | None, needles: list[str]) -> list[str]:
    if accounts_file is None or not needles:
        return []
    try:
        rows = read_catalog(accounts_file)
    except ConfigError as error:
        return [f"{accounts_file}: cannot be read to check it ({error}); check it by hand"]
    return [f"{accounts_file}: account {row.id} still lists this contact; remove it there, or it "
            "comes back with the next import of that file (or a start on an empty catalog)"
            for row in rows if row.contact_email and row.contact_email.lower() in needles]
