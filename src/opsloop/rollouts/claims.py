"""A claim on one tenant's call, from which tenants may be claimed to what its outcome makes of the
tenant's row.

Claimable: tenants of a running (or rolling back) rollout, within its `max_concurrency`, whose
maintenance window is open now; one found outside its window is set aside until it opens
(`not_before`, with the reason), so no claim looks at it again before then. An outcome is written
only by the worker that claimed the tenant, and only while it is still in flight; anything else is
a late result, audited and otherwise ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, or_
from sqlmodel import Session, col, func, select

from opsloop import audit
from opsloop.models import Account
from opsloop.remediation.http import Call, Outcome
from opsloop.rollouts import models as M
from opsloop.rollouts.models import Rollout, RolloutTarget
from opsloop.tenant_windows import parse as parse_window
from opsloop.types import OPSLOOP


@dataclass(frozen=True)
class Claim:
    target_id: int
    rollout_id: int
    tenant: str
    call: Call
    key: str
    rollback: bool


def claimable(db: Connection) -> list[int]:
    """The rollouts whose tenants may be claimed (read without a lock)."""
    query = select(Rollout.id).where(col(Rollout.state).in_((M.RUNNING, M.ROLLING_BACK)))
    return [i for i in db.execute(query.order_by(col(Rollout.id))).scalars() if i is not None]


def flying(session: Session, rollout_id: int) -> int:
    """How many of the rollout's calls are in flight (its concurrency in use)."""
    return int(
        session.exec(
            select(func.count())
            .select_from(RolloutTarget)
            .where(RolloutTarget.rollout_id == rollout_id, col(RolloutTarget.state).in_(M.IN_FLIGHT))
        ).one()
    )


def in_window(
    session: Session, rollout: Rollout, take: int, now: datetime, timezone: str
) -> tuple[list[RolloutTarget], dict[str, str]]:
    """Up to `take` pending tenants whose maintenance window is open now (or who have none), in
    order; and those set aside until their window opens (tenant -> why). One set aside stays pending,
    so its wave is not over."""
    picked: list[RolloutTarget] = []
    aside: dict[str, str] = {}
    while len(picked) < take:
        batch = session.exec(
            select(RolloutTarget)
            .where(
                RolloutTarget.rollout_id == rollout.id,
                RolloutTarget.state == M.PENDING,
                or_(col(RolloutTarget.not_before).is_(None), col(RolloutTarget.not_before) <= now),
                col(RolloutTarget.id).not_in([t.id for t in picked]),
            )
            .order_by(col(RolloutTarget.position))
            .limit(take - len(picked))
        ).all()
        if not batch:
            break
        windows = dict(
            session.exec(
                select(Account.id, Account.window).where(
                    col(Account.id).in_([t.tenant_id for t in batch]), col(Account.window).is_not(None)
                )
            ).all()
        )
        for target in batch:
            text = windows.get(target.tenant_id)
            window = parse_window(text) if text else None
            if window is None or window.is_open(now, timezone):
                picked.append(target)
                continue
            opens = window.opens_after(now, timezone)
            target.not_before = opens
            zone = window.timezone(timezone)
            shown = window.text if window.zone else f"{window.text} {zone}"
            target.waits_for = (
                f"waits for its maintenance window ({shown}), opens "
                f"{opens.astimezone(ZoneInfo(zone)):%a %Y-%m-%d %H:%M}"
            )
            session.add(target)
            aside[target.tenant_id] = target.waits_for
        session.flush()
    return picked, aside


def record_outcome(session: Session, rollout: Rollout, target: RolloutTarget, claim: Claim, outcome: Outcome,
                   ref: str, now: datetime, worker: str) -> audit.Entry:
    """Write a call's outcome onto its tenant (if `worker` still holds the claim) and return its audit
    entry, for the batch's one append to the chain."""
    in_flight = M.RB_SENDING if claim.rollback else M.SENDING
    if target.claimed_by != worker or target.state != in_flight:
        return audit.Entry(
            now,
            OPSLOOP,
            "rollout.late_result",
            ref,
            after={"rollout": rollout.id, "tenant": target.tenant_id, "state": outcome.state},
        )
    target.lease_until, target.finished_at = None, now
    if claim.rollback:
        target.state = {M.SUCCEEDED: M.ROLLED, M.FAILED: M.RB_FAILED}.get(outcome.state, M.RB_UNKNOWN)
        target.rollback_status, target.rollback_error = outcome.status, outcome.error
    else:
        target.state, target.status, target.error = outcome.state, outcome.status, outcome.error
        target.attempts = outcome.attempts
        if outcome.state == M.SUCCEEDED and rollout.state == M.ROLLING_BACK:
            target.state = M.RB_PENDING  # it arrived after Roll back was pressed: it is undone too
    session.add(target)
    return audit.Entry(
        now,
        OPSLOOP,
        f"rollout.{'rollback' if claim.rollback else 'call'}.{outcome.state}",
        ref,
        after={
            "rollout": rollout.id,
            "tenant": target.tenant_id,
            "status": outcome.status,
            "attempts": outcome.attempts,
            "key": claim.key,
            **({"error": outcome.error} if outcome.error else {}),
        },
    )
