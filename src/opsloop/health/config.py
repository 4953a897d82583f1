"""The `health` section of the policy file: factor weights, bands per tier, the renewal rule, plays.

A tenant's score starts at 100 and each factor takes points off (see
`opsloop.health.score`); the bands per tier turn the score into healthy /
watch / at-risk. Defined here rather than in `opsloop.policy` so the section
stays in one place; `opsloop.policy` imports it (this module imports nothing
of the policy, so there is no cycle).
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from opsloop.fields import ClockTime, Duration, Strict
from opsloop.types import Severity, Tier

# the factors a score is made of, in the order they are shown
FACTORS = ("incidents", "sla_breaches", "open_escalations", "open_exceptions", "usage", "nps", "tickets")
RULES = ("renewal",)


Points = Annotated[float, Field(ge=0, le=100)]


class Weights(Strict):
    """Points taken off the score of 100, per factor."""

    incidents: dict[Severity, Points] = {Severity.SEV1: 25, Severity.SEV2: 12, Severity.SEV3: 4,
                                         Severity.SEV4: 1}  # per incident touching the tenant
    sla_breaches: Points = 8  # per missed SLA target on the tenant's work items
    open_escalations: Points = 10  # per escalation open now
    open_exceptions: Points = 3  # per exception requested or approved now
    usage: Points = 30  # at a usage trend of -1 (scaled linearly; rising usage takes nothing)
    nps: Points = 20  # at NPS -100 (scaled linearly: 0 at +100, half at 0)
    tickets: Points = 3  # per ticket a day above the tenant's earlier daily rate


class Band(Strict):
    """A score at or above `watch` is healthy; below `at_risk` it is at-risk; between, watch."""

    watch: Annotated[int, Field(ge=1, le=100)]
    at_risk: Annotated[int, Field(ge=0, le=100)]

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.at_risk >= self.watch:
            raise ValueError("at_risk must be below watch")
        return self


DEFAULT_BANDS = {Tier.ENTERPRISE: Band(watch=85, at_risk=65), Tier.MID_MARKET: Band(watch=75, at_risk=55),
                 Tier.SMB: Band(watch=65, at_risk=45)}


class RenewalRule(Strict):
    """An incident of these severities touching an account of these tiers whose renewal is within
    `within` makes it at-risk whatever its score."""

    within: Duration = timedelta(days=90)
    severities: list[Severity] = [Severity.SEV1]
    tiers: list[Tier] = [Tier.ENTERPRISE]


class Plays(Strict):
    """How plays keep time: due dates and reminders count working time on an SLA calendar."""

    calendar: str = "business"  # a name under sla.calendars, or 24x7 (an undefined default counts 24x7)
    remind_before: Duration = timedelta(hours=4)  # "due soon", this much working time before a step is due
    remind_every: Duration = timedelta(hours=8)  # again while a step is overdue (8h: a business day)


class ExecutiveEscalation(Strict):
    """A play on an account of these tiers scoring below `score_below` also tells the account's
    executive sponsor (the catalog's `executive_sponsor`), or else everyone in the `leader` role."""

    tiers: list[Tier] = [Tier.ENTERPRISE]
    score_below: Annotated[int, Field(ge=1, le=100)] = 50
    min_arr: Annotated[int, Field(ge=0)] = 0


class HealthPolicy(Strict):
    window: Duration = timedelta(days=30)  # incidents, breaches and signals older than this do not count
    recent: Duration = timedelta(days=7)  # ticket volume: the last `recent` against the rest of the window
    daily_at: ClockTime = time(7, 0)  # the daily recompute, in the policy's time zone
    snooze: Duration = timedelta(days=7)  # how long "Snooze" silences a prompt
    weights: Weights = Weights()
    bands: dict[Tier, Band] = DEFAULT_BANDS
    renewal: RenewalRule | None = RenewalRule()
    plays: Plays = Plays()
    executive: ExecutiveEscalation | None = ExecutiveEscalation()
    # below this many outcomes a report figure (an AUC, a band, a playbook) says "not enough data"
    min_outcomes: Annotated[int, Field(ge=2, le=10_000)] = 10

    @model_validator(mode="before")
    @classmethod
    def _playbooks_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "playbooks" in data:
            raise ValueError("playbooks: playbooks are versioned files now, one per playbook in the "
                             "playbooks directory (OPSLOOP_PLAYBOOKS_DIR, default ./playbooks); "
                             "move each into playbooks/<id>.yaml")
        return data

    @field_validator("bands", mode="after")
    @classmethod
    def _every_tier(cls, bands: dict[Tier, Band]) -> dict[Tier, Band]:
        return {**DEFAULT_BANDS, **bands}  # a tier left out keeps its default band

    @model_validator(mode="after")
    def _recent_within_window(self) -> HealthPolicy:
        if self.recent >= self.window:
            raise ValueError("recent must be shorter than window")
        return self

    def band(self, tier: str) -> Band:
        try:
            return self.bands[Tier(tier)]
        except (ValueError, KeyError):  # the catalog validates tiers; be safe with old rows
            return self.bands[Tier.SMB]
