"""Free text meant for customers names no customer.

A public update goes to every tenant of its item and onto the status pages, so text a person
writes for customers is refused when it contains any known tenant's id, name or contact email
(whole words, any case). Nothing else about tenants ever reaches a customer's notice: see
`opsloop.loops.context.customer_context`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlmodel import Session, col, select

from opsloop.errors import InvalidInput
from opsloop.models import Account

MAX_TEXT = 2000  # characters of public text


def mentions(text: str, trace: str) -> bool:
    """Whether `trace` appears in `text` as a whole word (or address), in any case."""
    return re.search(rf"(?<![\w@.+-]){re.escape(trace)}(?![\w@-])", text, re.IGNORECASE) is not None


def named_tenant(text: str, accounts: Iterable[Account]) -> tuple[Account, str] | None:
    """The first of these tenants the text names, and what of it (id, name or contact)."""
    for account in accounts:
        for what, trace in (("name", account.name), ("id", account.id), ("contact", account.contact_email)):
            if trace and mentions(text, trace):
                return account, what
    return None


def check_public_text(session: Session, text: str) -> str:
    """The text, trimmed, if it may go to customers (it names no known tenant); else InvalidInput."""
    return check_text(text, session.exec(select(Account).order_by(col(Account.id))))


def check_text(text: str, accounts: Iterable[Account]) -> str:
    """`check_public_text` against these accounts."""
    text = text.strip()
    if not text:
        raise InvalidInput("write the text customers should read")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"the text is {len(text)} characters; at most {MAX_TEXT}")
    found = named_tenant(text, accounts)
    if found is not None:
        account, what = found
        raise InvalidInput(
            f"refused: the text contains the {what} of the tenant {account.id}. A public update goes to "
            "every tenant of the incident and onto its status pages, so it must name no customer; "
            "each tenant's notice already greets it by its own name")
    return text
