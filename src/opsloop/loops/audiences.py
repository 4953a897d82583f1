"""Who hears about a work item: the audiences of the policy that apply to it, and their recipients."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from opsloop.loops.config import Audience
from opsloop.models import Account, WorkItem
from opsloop.outbox import CHAT
from opsloop.policy import Policy
from opsloop.types import Kind


@dataclass(frozen=True)
class Recipient:
    audience: str
    transport: str
    target: str
    tenant_id: str = ""
    accounts: tuple[str, ...] = field(default=())  # the accounts this recipient hears about


def applies(audience: Audience, item: WorkItem, accounts: list[Account]) -> bool:
    """Whether the audience's `when` (kinds, severities, tiers) takes in this item."""
    when = audience.when
    if when.kinds and Kind(item.kind) not in when.kinds:
        return False
    planned = item.kind == Kind.MAINTENANCE.value  # a window has no severity worth filtering on
    if when.severities and not planned and item.severity not in {s.value for s in when.severities}:
        return False
    return not when.tiers or any(a.tier in {t.value for t in when.tiers} for a in accounts)


def recipients(policy: Policy, item: WorkItem, accounts: list[Account]) -> list[Recipient]:
    """Each recipient of each audience the item concerns: sales owners, support channels (and its
    webhook), each customer's contacts, product."""
    out: list[Recipient] = []
    for name, audience in policy.audiences.items():
        if not applies(audience, item, accounts):
            continue
        if name == "sales":
            by_owner: dict[str, list[str]] = defaultdict(list)
            for a in accounts:
                if a.sales_owner:
                    by_owner[a.sales_owner].append(a.id)
            out += [Recipient(name, CHAT, owner, accounts=tuple(ids)) for owner, ids in by_owner.items()]
        elif name == "support":
            channels = {a.support_channel for a in accounts if a.support_channel} or {
                policy.channel("support")}
            out += [Recipient(name, CHAT, channel) for channel in sorted(channels)]
            if audience.webhook is not None:
                out.append(Recipient(name, "webhook", f"env:{audience.webhook.url_env}"))
        elif name == "customers":
            for a in accounts:
                if a.contact_email:
                    out.append(Recipient(name, "email", a.contact_email, a.id, (a.id,)))
                if a.webhook_url:
                    out.append(Recipient(name, "webhook", a.webhook_url, a.id, (a.id,)))
        elif name == "product" and accounts:  # no customer touched: nothing for product to weigh
            out.append(Recipient(name, CHAT, policy.channel("product")))
    return out
