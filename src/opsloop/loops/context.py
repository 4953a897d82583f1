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


def _when(moment: datetime | None) -> str:
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
        "comms_owner": item.comms_owner or "unassigned", "started": _when(item.created_at),
        "resolved": _when(item.resolved_at), "open_for": format_duration(end - item.created_at),
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
    item: WorkItem, account: Account, *, cadence: timedelta | None, sender: str
) -> dict[str, Any]:
    """Only this account, and only what a customer should read: no internal title, ids or owners."""
    return {
        "customer": {"name": account.name},
        "incident": {
            "started": _when(item.created_at),
            "resolved": _when(item.resolved_at),
            "impact": _IMPACT.get(item.severity, "issues"),
            "cadence": format_duration(cadence) if cadence else "",
        },
        "sender": sender,
    }
