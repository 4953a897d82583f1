"""Tables of customer health: signals, scores (every change, and the last of each day), CSM prompts,
the plays CSMs run on them, and the renewal outcomes that tell whether any of it worked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from opsloop.models import IdRow, json_column, utc_column

# prompt states: sent and unanswered, answered by the CSM, or silenced for a while
OPEN, TAKEN, SNOOZED, DISMISSED = "open", "taken", "snoozed", "dismissed"
# what a CSM records when closing a play
PLAY_OUTCOMES = ("saved", "churned", "contracted", "expanded", "not-a-risk")
# what a renewal came to (`opsloop accounts outcomes`, signals of kind `renewal`)
RENEWED, EXPANDED, CONTRACTED, CHURNED = "renewed", "expanded", "contracted", "churned"
RENEWAL_OUTCOMES = (RENEWED, EXPANDED, CONTRACTED, CHURNED)
LOST = (CHURNED, CONTRACTED)  # the outcomes a health score should have seen coming


class HealthSignal(IdRow, table=True):
    """One measurement of a tenant (usage trend, NPS, ticket volume) at a time.

    (tenant, kind, at) is unique: a sender retrying a request replaces the value
    instead of counting it twice.
    """

    __tablename__ = "health_signals"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "at", name="uq_health_signals_tenant_kind_at"),
    )

    tenant_id: str = Field(foreign_key="accounts.id", max_length=64, ondelete="CASCADE")
    kind: str = Field(max_length=16)  # usage | nps | tickets
    value: float
    at: datetime = utc_column(nullable=False)
    received_at: datetime = utc_column(nullable=False)
    source: str = Field(max_length=64)  # the integration that sent it


class HealthScore(IdRow, table=True):
    """A tenant's score at a time, with the factors behind it (history: trends and prompts' "was")."""

    __tablename__ = "health_scores"
    __table_args__ = (Index("ix_health_scores_tenant_at", "tenant_id", "at", "id"),)

    tenant_id: str = Field(foreign_key="accounts.id", max_length=64, ondelete="CASCADE")
    at: datetime = utc_column(nullable=False)
    score: int
    band: str = Field(max_length=16)  # healthy | watch | at-risk
    factors: dict[str, Any] = json_column(dict)  # see opsloop.health.score.Assessment.to_json
    cause: str = Field(max_length=64)  # what made it recompute: INC-3 created, signals, daily ...


@dataclass(frozen=True)
class ScoreRow:
    """A `HealthScore` row read (or just written) as plain values: the recompute's working copy."""

    id: int
    tenant_id: str
    at: datetime
    score: int
    band: str
    factors: dict[str, Any]


class HealthPrompt(IdRow, table=True):
    """One risk-intervention prompt to an account's CSM, and what came of it.

    A tenant has at most one current prompt (`ended_at` NULL; a partial unique
    index holds that even under concurrent writers): while it is open, taken,
    dismissed or snoozed, no new prompt goes out. It ends when the account
    recovers (leaves at-risk) or when its snooze ran out and the account is still
    at risk (a new prompt follows). `status` and `end_reason` together are the
    outcome the team reviews: taken then recovered is an intervention that worked.
    """

    __tablename__ = "health_prompts"
    __table_args__ = (
        Index("uq_health_prompts_current", "tenant_id", unique=True,
              sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL")),
        Index("ix_health_prompts_tenant_opened", "tenant_id", "opened_at"),
    )

    tenant_id: str = Field(foreign_key="accounts.id", max_length=64, ondelete="CASCADE")
    csm: str = Field(max_length=64)  # who was prompted
    opened_at: datetime = utc_column(nullable=False)
    score_id: int | None = Field(default=None, foreign_key="health_scores.id", ondelete="SET NULL")
    score: int
    reasons: list[str] = json_column(list)  # factor and rule names, most important first
    playbook: str | None = Field(default=None, max_length=64)
    status: str = Field(default=OPEN, max_length=16)
    answered_by: str | None = Field(default=None, max_length=64)
    answered_at: datetime | None = utc_column()
    snoozed_until: datetime | None = utc_column()
    ended_at: datetime | None = utc_column()
    end_reason: str | None = Field(default=None, max_length=32)  # recovered | snooze expired


class HealthDaily(SQLModel, table=True):
    """The last score of each local day, per tenant: the series that trends and the report read.

    Written (upserted) with every score row, so the day's last score wins; the daily
    recompute writes one for every account, so a day without changes has its row too.
    `units` are the factors' raw amounts (see `Assessment.units`), which calibration fits.
    """

    __tablename__ = "health_daily"

    tenant_id: str = Field(foreign_key="accounts.id", primary_key=True, max_length=64, ondelete="CASCADE")
    day: date = Field(primary_key=True)
    at: datetime = utc_column(nullable=False)
    score: int
    band: str = Field(max_length=16)
    units: dict[str, float] = json_column(dict)


class HealthDailyRun(SQLModel, table=True):
    """The claim of one local day's recompute: its key is the day, so it runs once however many
    replicas (or duplicate timers) reach it."""

    __tablename__ = "health_daily_runs"

    day: date = Field(primary_key=True)
    ran_at: datetime = utc_column(nullable=False)
    accounts: int = 0


class RenewalOutcome(IdRow, table=True):
    """What an account's renewal came to, and its ARR before and after (NRR, gross retention).

    (tenant, date) is unique: importing the same outcome again replaces it. `arr_before` is the
    catalog's ARR when the outcome was first recorded and is kept on replacement.
    """

    __tablename__ = "renewal_outcomes"
    __table_args__ = (
        UniqueConstraint("tenant_id", "date", name="uq_renewal_outcomes_tenant_date"),
        Index("ix_renewal_outcomes_date", "date"),
    )

    tenant_id: str = Field(foreign_key="accounts.id", max_length=64, ondelete="CASCADE")
    date: date
    outcome: str = Field(max_length=16)  # renewed | expanded | contracted | churned
    arr_before: int
    arr_after: int
    source: str = Field(max_length=64)  # a file name, or the integration that sent it
    recorded_at: datetime = utc_column(nullable=False)


class HealthPlay(IdRow, table=True):
    """A CSM's play on an at-risk account: a playbook's steps with due dates, then an outcome.

    A tenant has at most one open play (`closed_at` NULL; a partial unique index). The
    playbook's id, version and content hash are pinned: its steps are copied into
    `health_play_steps`, so editing the file never changes a running play.
    """

    __tablename__ = "health_plays"
    __table_args__ = (
        Index("uq_health_plays_open", "tenant_id", unique=True,
              sqlite_where=text("closed_at IS NULL"), postgresql_where=text("closed_at IS NULL")),
        Index("ix_health_plays_opened_at", "opened_at"),
        Index("ix_health_plays_closed_at", "closed_at"),
    )

    tenant_id: str = Field(foreign_key="accounts.id", max_length=64, ondelete="CASCADE")
    prompt_id: int | None = Field(default=None, foreign_key="health_prompts.id", ondelete="SET NULL")
    owner: str = Field(max_length=64)  # who took it; reminders go to them
    playbook_id: str = Field(max_length=64)
    playbook_version: str = Field(max_length=64)
    playbook_sha256: str = Field(max_length=64)
    opened_at: datetime = utc_column(nullable=False)
    score: int  # the account's score when the play opened
    escalated_to: list[str] = json_column(list)  # executives told (executive escalation)
    closed_at: datetime | None = utc_column()
    closed_by: str | None = Field(default=None, max_length=64)
    outcome: str | None = Field(default=None, max_length=16)  # one of PLAY_OUTCOMES
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class HealthPlayStep(IdRow, table=True):
    """One step of a play's checklist, due at a moment computed on the business calendar."""

    __tablename__ = "health_play_steps"
    __table_args__ = (Index("ix_health_play_steps_play", "play_id", "position"),)

    play_id: int = Field(foreign_key="health_plays.id", ondelete="CASCADE")
    position: int
    step_id: str = Field(max_length=64)
    title: str = Field(max_length=300)
    due_at: datetime = utc_column(nullable=False)
    done_at: datetime | None = utc_column()
    done_by: str | None = Field(default=None, max_length=64)
    reminders: int = 0  # reminders sent about it
