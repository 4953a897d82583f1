"""Which tenants a rollout calls, in which order, and what its templates see of each.

The selector is evaluated against the account catalog (and the newest health
scores) once, when the run starts; the result is pinned in `rollout_targets` (`pin_targets`).
Order (`order_by`), lowest risk first, ties by id:

- `tier`: smb, then mid-market, then enterprise;
- `health`: healthy, then watch, then at-risk (a tenant never scored counts as healthy);
- `renewal_date`: the renewal furthest away first (none: first);
- `id`: alphabetical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from opsloop import audit
from opsloop.health.service import latest_scores
from opsloop.models import Account, WorkItem
from opsloop.rollouts import models as M
from opsloop.rollouts.config import Fleet, Selector
from opsloop.rollouts.models import Rollout, RolloutTarget
from opsloop.runbooks import states as S
from opsloop.runbooks.models import RunbookRun
from opsloop.runbooks.schema import HttpStep

_TIER_RANK = {"smb": 0, "mid-market": 1, "enterprise": 2}
_BAND_RANK = {"healthy": 0, "watch": 1, "at-risk": 2}
UNSCORED = "healthy"


@dataclass(frozen=True)
class Tenant:
    """A tenant's public catalog fields: what `tenant` is in a foreach step's templates."""

    id: str
    name: str
    tier: str
    region: str | None
    renewal_date: date | None
    band: str

    def context(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tier": self.tier,
            "region": self.region,
            "renewal_date": self.renewal_date.isoformat() if self.renewal_date else None,
            "band": self.band,
        }


def tenants(session: Session, ids: Sequence[str] | None = None) -> dict[str, Tenant]:
    """The catalog's tenants (all, or the ids named) with their current health band."""
    query = sa_select(
        col(Account.id), col(Account.name), col(Account.tier), col(Account.region), col(Account.renewal_date)
    )
    if ids is not None:
        query = query.where(col(Account.id).in_(list(ids)))
    bands = {tenant: row.band for tenant, row in latest_scores(session, ids).items()}
    return {
        row[0]: Tenant(row[0], row[1], row[2], row[3], row[4], bands.get(row[0], UNSCORED))
        for row in session.execute(query)
    }


def matches(tenant: Tenant, selector: Selector) -> bool:
    if tenant.id in selector.exclude:
        return False
    if selector.ids is not None and tenant.id not in selector.ids:
        return False
    if selector.tier is not None and tenant.tier not in {t.value for t in selector.tier}:
        return False
    if selector.region is not None and tenant.region not in selector.region:
        return False
    return selector.band is None or tenant.band in selector.band


def _key(tenant: Tenant, order_by: str) -> tuple[Any, ...]:
    if order_by == "tier":
        return (_TIER_RANK.get(tenant.tier, 3), tenant.id)
    if order_by == "health":
        return (_BAND_RANK.get(tenant.band, 3), tenant.id)
    if order_by == "renewal_date":  # furthest renewal first; none at all before any date
        ordinal = tenant.renewal_date.toordinal() if tenant.renewal_date else 10**7
        return (-ordinal, tenant.id)
    return (tenant.id,)


def choose(session: Session, fleet: Fleet) -> list[Tenant]:
    """The tenants the selector picks, in rollout order."""
    found = tenants(session, fleet.select.ids)
    picked = [t for t in found.values() if matches(t, fleet.select)]
    return sorted(picked, key=lambda t: _key(t, fleet.order_by))


def waves_of(fleet: Fleet, count: int) -> list[int]:
    """The wave index of each of `count` ordered targets."""
    out: list[int] = []
    for index, size in enumerate(fleet.wave_sizes(count)):
        out += [index] * size
    return out


def pin_targets(session: Session, run: RunbookRun, step: HttpStep, item: WorkItem, now: datetime) -> Rollout:
    """Choose the step's targets now and keep them (`rollout_targets`, each with its wave), audited."""
    fleet = step.fleet
    assert fleet is not None and run.id is not None and item.id is not None
    chosen = choose(session, fleet)
    rollout = Rollout(
        run_id=run.id,
        step_id=step.id,
        work_item_id=item.id,
        state=M.PINNED,
        targets=len(chosen),
        waves=fleet.wave_sizes(len(chosen)),
        allowed_errors=fleet.allowed_errors(len(chosen)),
        created_at=now,
        updated_at=now,
    )
    session.add(rollout)
    session.flush()
    assert rollout.id is not None
    rows = [
        {
            "rollout_id": rollout.id,
            "tenant_id": t.id,
            "position": n,
            "wave": w,
            "state": M.WAITING,
            "generation": 1,
            "request": {},
            "attempts": 0,
        }
        for n, (t, w) in enumerate(zip(chosen, waves_of(fleet, len(chosen)), strict=True))
    ]
    if rows:
        session.execute(insert(RolloutTarget), rows)
    audit.record(
        session,
        at=now,
        actor=S.AUTOMATIC,
        action="rollout.pinned",
        subject=item.ref,
        after={
            "run": run.id,
            "step": step.id,
            "targets": [t.id for t in chosen],
            "waves": rollout.waves,
            "allowed_errors": rollout.allowed_errors,
        },
    )
    return rollout
