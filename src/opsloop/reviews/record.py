"""The facts of a review, gathered from what opsloop recorded while the item ran.

Nothing here is typed by a person: the timeline is the item's own timeline lines (declaration,
acknowledgements, severity and role changes, runbook steps with their reasons, approvals, remediation
calls and their results, recent changes, follow-ups), the audit chain's clock warnings, breaches and
pages, and the feedback loops' notices with the audience each reached and when. Impact is the
affected accounts from the catalog (tier, ARR), the duration, customer-minutes (each affected tenant's
minutes until the impact stopped) and each SLA target's outcome with its exact times.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from opsloop.durations import format_duration
from opsloop.loops.models import FeedbackLoop
from opsloop.messages import user
from opsloop.models import Account, AuditEvent, OutboxMessage, TimelineEvent, WorkItem, WorkItemTenant
from opsloop.reviews import recurrence
from opsloop.reviews.models import FollowUp
from opsloop.sla.models import SlaClock

# audit actions that are not on the item's timeline but belong on the review's
_AUDITED = ("sla.warning", "sla.breached", "escalation.page", "escalation.exhausted")
_SKIPPED_ON_REVIEW = ("followup.created", "followup.closed", "review.drafted")


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def gather(session: Session, item: WorkItem, now: datetime) -> dict[str, Any]:
    """The drafted facts: summary, impact and timeline (JSON-ready; times as ISO 8601 UTC)."""
    assert item.id is not None
    impact = _impact(session, item, now)
    return {
        "ref": item.ref,
        "kind": item.kind,
        "title": item.title,
        "severity": item.severity,
        "declared_at": iso(item.created_at),
        "acknowledged_at": iso(item.acknowledged_at),
        "mitigated_at": iso(item.mitigated_at),
        "resolved_at": iso(item.resolved_at),
        "owner": item.owner,
        "comms_owner": item.comms_owner,
        "summary": _summary(item, impact),
        "impact": impact,
        "timeline": timeline(session, item),
        "recurrence": recurrence.of_item(session, item),
    }


def _impact(session: Session, item: WorkItem, now: datetime) -> dict[str, Any]:
    accounts = list(
        session.exec(
            select(Account)
            .join(WorkItemTenant, col(WorkItemTenant.tenant_id) == col(Account.id))
            .where(WorkItemTenant.work_item_id == item.id)
            .order_by(col(Account.arr).desc(), col(Account.id))
        )
    )
    ended = item.mitigated_at or item.resolved_at
    until = ended or now
    minutes = max(0, int((until - item.created_at).total_seconds() // 60))
    tiers: dict[str, int] = {}
    for account in accounts:
        tiers[account.tier] = tiers.get(account.tier, 0) + 1
    clocks = session.exec(
        select(SlaClock).where(SlaClock.work_item_id == item.id).order_by(col(SlaClock.id))
    ).all()
    return {
        "tenants": [{"id": a.id, "name": a.name, "tier": a.tier, "arr": a.arr} for a in accounts],
        "tiers": tiers,
        "arr": sum(a.arr for a in accounts),
        "started_at": iso(item.created_at),
        "impact_ended_at": iso(ended),  # mitigated (or resolved); None while it goes on
        "impact_minutes": minutes,
        "duration_seconds": int(((item.resolved_at or now) - item.created_at).total_seconds()),
        "customer_minutes": minutes * len(accounts),
        "sla": [
            {
                "target": c.target,
                "state": c.state,
                "target_seconds": c.target_seconds,
                "started_at": iso(c.started_at),
                "due_at": iso(c.due_at),
                "stopped_at": iso(c.stopped_at),
                "settled_at": iso(c.settled_at),
            }
            for c in clocks
        ],
    }


def _summary(item: WorkItem, impact: dict[str, Any]) -> str:
    """A first paragraph for people to edit: what, how long, whom it touched, which targets it missed."""

    def after(moment: datetime | None) -> str | None:
        return format_duration(moment - item.created_at) if moment is not None else None

    parts = [
        f"{item.ref} “{item.title}” ({item.severity}) was declared at "
        f"{item.created_at.strftime('%Y-%m-%d %H:%M UTC')}"
    ]
    for label, moment in (
        ("acknowledged", item.acknowledged_at),
        ("mitigated", item.mitigated_at),
        ("resolved", item.resolved_at),
    ):
        took = after(moment)
        if took is not None:
            parts.append(f"{label} after {took}")
    text = ", ".join(parts) + "."
    tenants = impact["tenants"]
    if tenants:
        text += (
            f" It affected {len(tenants)} account{'s' if len(tenants) != 1 else ''} "
            f"({', '.join(t['name'] for t in tenants)}; ARR {impact['arr']:,}), "
            f"{impact['customer_minutes']:,} customer-minutes."
        )
    missed = sorted({c["target"] for c in impact["sla"] if c["state"] == "breached"})
    if missed:
        text += f" It missed its {' and '.join(missed)} target{'s' if len(missed) > 1 else ''}."
    return text


def timeline(session: Session, item: WorkItem) -> list[dict[str, Any]]:
    """Every recorded moment of the item, oldest first: {at, what, actor, text}."""
    entries: list[tuple[datetime, int, dict[str, Any]]] = []
    for line in session.exec(
        select(TimelineEvent).where(TimelineEvent.work_item_id == item.id).order_by(col(TimelineEvent.id))
    ):
        if line.action in _SKIPPED_ON_REVIEW:
            continue
        entries.append(
            (
                line.at,
                len(entries),
                {"at": iso(line.at), "what": line.action, "actor": line.actor, "text": line.text},
            )
        )
    for event in session.exec(
        select(AuditEvent)
        .where(AuditEvent.subject == item.ref, col(AuditEvent.action).in_(_AUDITED))
        .order_by(col(AuditEvent.seq))
    ):
        entries.append(
            (
                event.at,
                len(entries),
                {"at": iso(event.at), "what": event.action, "actor": event.actor, "text": _audited(event)},
            )
        )
    loops = {
        loop.id: loop
        for loop in session.exec(select(FeedbackLoop).where(FeedbackLoop.work_item_id == item.id))
    }
    if loops:
        sent = session.exec(
            select(OutboxMessage)
            .where(or_(*(col(OutboxMessage.key).startswith(f"loop:{loop_id}:") for loop_id in loops)))
            .order_by(col(OutboxMessage.id))
        )
        for message in sent:
            entries.append(_notice(loops[int(message.key.split(":")[1])], message, len(entries)))
    entries.sort(key=lambda e: (e[0], e[1]))
    return [e[2] for e in entries]


def _audited(event: AuditEvent) -> str:
    after = event.after or {}
    if event.action == "sla.warning":
        return (
            f"⏳ {after.get('target')} clock warning: {round(float(after.get('fraction', 0)) * 100)}% of "
            f"its target used (due {_short(after.get('due_at'))})"
        )
    if event.action == "sla.breached":
        return f"🚨 {after.get('target')} target missed (it was due {_short(after.get('due_at'))})"
    if event.action == "escalation.page":
        users = ", ".join(f"{user(u)}" for u in after.get("users", [])) or "nobody (no one to page)"
        return (
            f"📟 paged {users} (escalation {after.get('chain')}, level {after.get('level')}, "
            f"round {after.get('round')})"
        )
    return f"🚨 nobody acknowledged after {after.get('rounds')} round(s) of escalation {after.get('chain')}"


def _notice(loop: FeedbackLoop, message: OutboxMessage, order: int) -> tuple[datetime, int, dict[str, Any]]:
    event = message.key.split(":")[2] if message.key.count(":") >= 2 else "notice"
    who = loop.audience + (f" ({loop.tenant_id})" if loop.tenant_id else "")
    state = {"sent": "delivered", "pending": "queued", "failed": "failed", "cancelled": "cancelled"}.get(
        message.status, message.status
    )
    at = message.sent_at or message.created_at
    return (
        at,
        order,
        {
            "at": iso(at),
            "what": "notice",
            "actor": "system:opsloop",
            "audience": loop.audience,
            "tenant": loop.tenant_id or None,
            "transport": loop.transport,
            "status": state,
            "text": f"📣 {event} notice to {who} by {loop.transport}: {state}",
        },
    )


def _short(value: Any) -> str:
    if not isinstance(value, str):
        return "—"
    try:
        return datetime.fromisoformat(value).strftime("%H:%M:%S UTC")
    except ValueError:
        return value


def canonical(doc: Mapping[str, Any], followups: list[FollowUp]) -> bytes:
    """What a published review's hash covers: the document and its follow-ups as they stood."""
    listed = [
        {
            "ref": f.ref,
            "what": f.what,
            "owner": f.owner,
            "due_at": iso(f.due_at),
            "closed_at": iso(f.closed_at),
            "note": f.note,
        }
        for f in followups
    ]
    return json.dumps(
        {"review": doc, "followups": listed}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
