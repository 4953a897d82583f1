"""Which SLA policy a work item is held to: the first `sla.policies` entry that matches."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, col, select

from opsloop.models import Account, WorkItem, WorkItemTenant
from opsloop.policy import Policy
from opsloop.sla.config import SlaPolicy
from opsloop.types import Kind, Tier

TARGETS = ("response", "update", "resolution")
_RANK = {Tier.SMB.value: 0, Tier.MID_MARKET.value: 1, Tier.ENTERPRISE.value: 2}


@dataclass(frozen=True)
class Match:
    index: int
    policy: SlaPolicy

    def targets(self) -> dict[str, timedelta]:
        """The targets this policy sets, in the order clocks are shown."""
        values = {name: getattr(self.policy.targets, name) for name in TARGETS}
        return {name: value for name, value in values.items() if value is not None}


def highest_tier(tiers: Iterable[str]) -> str | None:
    """An item is as important as its most important customer: enterprise > mid-market > smb."""
    ranked = [t for t in tiers if t in _RANK]
    return max(ranked, key=_RANK.__getitem__) if ranked else None


def tier_of(session: Session, work_item_id: int) -> str | None:
    tiers = session.exec(
        select(Account.tier).join(WorkItemTenant, col(WorkItemTenant.tenant_id) == col(Account.id))
        .where(WorkItemTenant.work_item_id == work_item_id)
    ).all()
    return highest_tier(tiers)


def match_policy(policy: Policy, item: WorkItem, tier: str | None) -> Match | None:
    """The first policy whose every stated condition holds (kind, severity, tier, labels); a
    maintenance window is planned work, held to a policy only when one names its kind."""
    for index, candidate in enumerate(policy.sla.policies):
        match = candidate.match
        if match.kind is None and item.kind == Kind.MAINTENANCE.value:
            continue
        if match.kind is not None and match.kind.value != item.kind:
            continue
        if match.severity is not None and match.severity.value != item.severity:
            continue
        if match.tier is not None and match.tier.value != tier:
            continue
        if any(item.labels.get(key) != value for key, value in match.labels.items()):
            continue
        return Match(index, candidate)
    return None


def policy_at(policy: Policy, index: int) -> SlaPolicy | None:
    """The policy a clock was started under, if the file still has it."""
    policies = policy.sla.policies
    return policies[index] if 0 <= index < len(policies) else None
