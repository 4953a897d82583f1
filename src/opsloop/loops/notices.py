"""What each recipient of a feedback loop reads: rendered from its audience's templates, and queued.

Every notice carries a `message`: the public words of the moment (opsloop's proposal, or what a
person wrote or edited in review). Customer templates wrap it in a greeting for that one account
(`customer_context` holds nothing about any other), internal ones show it as the latest news.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import ChoiceLoader, DictLoader, PackageLoader
from sqlmodel import Session

from opsloop import outbox
from opsloop.errors import ConfigError
from opsloop.loops.config import Audience
from opsloop.loops.context import (
    customer_context,
    internal_context,
    phase_of,
    review_context,
    review_parts,
    rollout_context,
    window_context,
)
from opsloop.loops.models import FeedbackLoop
from opsloop.messages import Message, escape
from opsloop.models import Account, WorkItem
from opsloop.outbox import CHAT
from opsloop.policy import Policy
from opsloop.templating import check_syntax, render, sandbox


class Notices:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        overrides = {f"{name}_{event}.j2": source for name, audience in policy.audiences.items()
                     for event, source in audience.templates.items()}
        self.env = sandbox(ChoiceLoader([DictLoader(overrides), PackageLoader("opsloop.loops", "templates")]))
        for name, audience in policy.audiences.items():
            for event, source in audience.templates.items():
                problem = check_syntax(self.env, source)
                if problem:
                    raise ConfigError(f"audiences.{name}.templates.{event}: {problem}")

    def audience(self, name: str) -> Audience:
        return self.policy.audiences[name]  # type: ignore[index]

    def render(self, loop: FeedbackLoop, item: WorkItem, accounts: list[Account], event: str,
               now: datetime, message: str = "") -> tuple[str, str]:
        """(headline, the rest) of what this recipient reads."""
        if loop.audience == "customers" and event == "review":  # a published review's public part
            [account] = [a for a in accounts if a.id == loop.tenant_id]
            happened, changed = review_parts(message)
            context = review_context(item, account, what_happened=happened, what_we_changed=changed,
                                     sender=self.audience("customers").from_address)
        else:
            context = {**self.context(loop, item, accounts, now, message), **window_context(item)}
        return self._render(loop.audience, event, context)

    def render_rollout(self, account: Account, event: str, at: datetime) -> tuple[str, str]:
        """(headline, the rest) of a fleet rollout's notice to one account (`rollout_start|done`)."""
        context = rollout_context(account, at=at, sender=self.audience("customers").from_address)
        return self._render("customers", event, context)

    def _render(self, audience: str, event: str, context: dict[str, Any]) -> tuple[str, str]:
        source = self.env.loader.get_source(self.env, f"{audience}_{event}.j2")[0]  # type: ignore[union-attr]
        text = render(self.env, source, context, what=f"audiences.{audience}.templates.{event}")
        headline, _, rest = text.partition("\n")
        return headline.strip(), rest.strip()

    def enqueue(self, session: Session, loop: FeedbackLoop, item: WorkItem, accounts: list[Account],
                event: str, now: datetime, message: str = "") -> None:
        """Queue one notice to the loop's recipient (once: the outbox key names the loop and notice)."""
        loop.notices += 1
        self._queue(session, loop, item, accounts, event, now, message)

    def enqueue_many(self, session: Session, loops: list[FeedbackLoop], item: WorkItem,
                     accounts: list[Account], event: str, now: datetime) -> None:
        """`enqueue` to each loop; loops just opened go in with their first notice counted (one INSERT
        each, not an INSERT and then an UPDATE of the count)."""
        for loop in loops:
            loop.notices += 1
        session.flush()  # the keys name the loops' ids
        for loop in loops:
            self._queue(session, loop, item, accounts, event, now)

    def _queue(self, session: Session, loop: FeedbackLoop, item: WorkItem, accounts: list[Account],
               event: str, now: datetime, message: str = "") -> None:
        headline, rest = self.render(loop, item, accounts, event, now, message)
        key = f"loop:{loop.id}:{event}:{loop.notices}"
        if event == "resolution":
            loop.resolution_key = key
        session.add(loop)
        if loop.transport == CHAT:
            payload: dict[str, Any] = {"message": Message(text=escape(headline),
                                                          body=escape(rest) or None).to_json()}
        elif loop.transport == "email":
            payload = {"subject": headline, "body": rest, "from": self.audience(loop.audience).from_address}
        else:
            payload = {"json": {"event": event, "audience": loop.audience, "subject": headline,
                                "text": rest, **self.webhook_fields(loop, item)}}
        outbox.enqueue(session, transport=loop.transport, target=loop.target, now=now, key=key,
                       payload=payload)

    def context(self, loop: FeedbackLoop, item: WorkItem, accounts: list[Account], now: datetime,
                message: str = "") -> dict[str, Any]:
        audience = self.audience(loop.audience)
        if loop.audience == "customers":
            [account] = [a for a in accounts if a.id == loop.tenant_id]
            return customer_context(item, account, cadence=audience.cadence, sender=audience.from_address,
                                    message=message)
        mine = [a for a in accounts if a.sales_owner == loop.target] if loop.audience == "sales" else accounts
        return internal_context(item, accounts, mine, now, latest=message)

    def webhook_fields(self, loop: FeedbackLoop, item: WorkItem) -> dict[str, Any]:
        if loop.audience == "customers":  # public facts only
            return {"status": phase_of(item.state), "tenant": loop.tenant_id}
        return {"ref": item.ref, "title": item.title, "severity": item.severity, "state": item.state}
