"""What each audience's template may see.

A customer's notice is rendered from `customer_context`, which is built from
that one account and the incident's public facts: nothing in it can name
another tenant, because nothing about another tenant is in it (a property
test over random multi-tenant incidents holds this). Internal audiences get
the incident's full context.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from opsloop.durations import format_duration
from opsloop.models import Account, WorkItem

_IMPACT = {
    "sev1": "errors or an outage of the service",
    "sev2": "errors or slowness in part of the service",
    "sev3": "occasional errors or slowness",
    "sev4": "minor issues",
}


# what customers are told an item is doing (Atlassian Statuspage's words), whatever its internal state
_PHASES = {"triggered": "investigating", "acknowledged": "investigating", "mitigated": "monitoring",
           "resolved": "resolved", "closed": "resolved"}


def phase_of(state: str) -> str:
    """The public phase of an internal state: investigating, monitoring or resolved."""
    return _PHASES.get(state, "investigating")


def impact(severity: str) -> str:
    return _IMPACT.get(severity, "issues")


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def money(amount: int) -> str:
    return f"${amount:,.0f}"


def account_view(account: Account) -> dict[str, Any]:
    return {
        "id": account.id, "name": account.name, "tier": account.tier, "arr": account.arr,
        "arr_text": money(account.arr), "renewal_date": str(account.renewal_date or ""),
        "csm": account.csm or "", "sales_owner": account.sales_owner or "",
    }


def item_view(item: WorkItem, now: datetime, latest: str = "") -> dict[str, Any]:
    end = item.resolved_at or now
    return {
        "ref": item.ref, "kind": item.kind, "title": item.title, "severity": item.severity,
        "state": item.state, "owner": item.owner or "unassigned",
        "comms_owner": item.comms_owner or "unassigned", "started": when(item.created_at),
        "resolved": when(item.resolved_at), "open_for": format_duration(end - item.created_at),
        "latest": latest or "no news yet",
    }


def internal_context(
    item: WorkItem, tenants: list[Account], recipient_accounts: list[Account], now: datetime,
    latest: str = "",
) -> dict[str, Any]:
    return {
        "item": item_view(item, now, latest),
        "tenants": [account_view(a) for a in tenants],
        "accounts": [account_view(a) for a in recipient_accounts],
        "arr_text": money(sum(a.arr for a in tenants)),
    }


def customer_context(
    item: WorkItem, account: Account, *, cadence: timedelta | None, sender: str, message: str = "",
) -> dict[str, Any]:
    """Only this account, and only what a customer should read: no internal title, ids or owners.

    `message` is the public text of the moment, checked to name no tenant before it gets here."""
    return {
        "customer": {"name": account.name},
        "incident": {
            "started": when(item.created_at),
            "mitigated": when(item.mitigated_at),
            "resolved": when(item.resolved_at),
            "impact": impact(item.severity),
            "cadence": format_duration(cadence) if cadence else "",
            "phase": phase_of(item.state),
            "message": message,
        },
        "sender": sender,
    }


def window_context(item: WorkItem) -> dict[str, Any]:
    """A maintenance window's times, public facts every audience may read (nothing for other items)."""
    if item.kind != "maintenance" or "starts_at" not in item.labels:
        return {}
    starts, ends = (datetime.fromisoformat(item.labels[k]) for k in ("starts_at", "ends_at"))
    return {"window": {"starts": when(starts), "ends": when(ends),
                       "lasts": format_duration(ends - starts)}}


def traces(account: Account) -> list[str]:
    """What would give an account away to another customer: its name, id, contact, owner, ARR."""
    found = [account.name, account.id, account.contact_email or "", account.sales_owner or "",
             money(account.arr), str(account.arr)]
    return [t for t in found if t]


def review_context(item: WorkItem, account: Account, *, what_happened: str, what_we_changed: str,
                   sender: str) -> dict[str, Any]:
    """A published review's public part for one account: the people's public words and this account's
    impact (the incident's times), nothing else."""
    ended = item.mitigated_at or item.resolved_at
    minutes = int(((ended or item.created_at) - item.created_at).total_seconds() // 60)
    return {
        "customer": {"name": account.name},
        "incident": {"started": when(item.created_at), "ended": when(ended) or "now", "minutes": minutes,
                     "impact": impact(item.severity)},
        "review": {"what_happened": what_happened, "what_we_changed": what_we_changed},
        "sender": sender,
    }


# A review's public part travels as one text (a draft's, a public update's): what happened, then this
# line's words and what was changed. Each customer's notice renders the two through its template.
REVIEW_CHANGED = "\n\nWhat we changed: "


def review_message(what_happened: str, what_we_changed: str) -> str:
    return f"{what_happened}{REVIEW_CHANGED}{what_we_changed}"


def review_parts(message: str) -> tuple[str, str]:
    """(what happened, what we changed) of a `review_message`."""
    happened, _, changed = message.partition(REVIEW_CHANGED)
    return happened, changed


def rollout_context(account: Account, *, at: datetime, sender: str) -> dict[str, Any]:
    """A fleet rollout's wave for one account: its name, when the change began or ended, the sender."""
    return {"customer": {"name": account.name}, "sender": sender, "change": {"at": when(at)}}


def proposed_text(item: WorkItem, event: str, *, latest: str | None = None) -> str:
    """What opsloop proposes to tell customers for `event` in the item's current state."""
    started, hurt = when(item.created_at), impact(item.severity)
    phase = phase_of(item.state)
    if event == "resolution" or phase == "resolved":
        return (f"The problem that began at {started} was resolved at {when(item.resolved_at)}. "
                "The service is working normally again.")
    if event == "cadence":
        still = f"We are still working on the problem that began at {started}."
        return f"{still}\n\nOur last update: {latest}" if latest else still
    if phase == "monitoring":
        return (f"A fix has been applied and we are monitoring the results. Between {started} and "
                f"{when(item.mitigated_at)} some users may have seen {hurt}.")
    return f"Since {started} some users may see {hurt}. Our engineers are working on it now."
