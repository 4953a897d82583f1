"""Tables of customer health: the signal time series, the score history, and CSM prompts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from opsloop.models import json_column, utc_column

# prompt states: sent and unanswered, answered by the CSM, or silenced for a while
OPEN, TAKEN, SNOOZED, DISMISSED = "open", "taken", "snoozed", "dismissed"


class HealthSignal(SQLModel, table=True):
    """One measurement of a tenant (usage trend, NPS, ticket volume) at a time.

    (tenant, kind, at) is unique: a sender retrying a request replaces the value
    instead of counting it twice.
    """

    __tablename__ = "health_signals"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "at", name="uq_health_signals_tenant_kind_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="accounts.id", max_length=64, ondelete="CASCADE")
    kind: str = Field(max_length=16)  # usage | nps | tickets
    value: float
    at: datetime = utc_column(nullable=False)
    received_at: datetime = utc_column(nullable=False)
    source: str = Field(max_length=64)  # the integration that sent it


class HealthScore(SQLModel, table=True):
    """A tenant's score at a time, with the factors behind it (history: trends and prompts' "was")."""

    __tablename__ = "health_scores"
    __table_args__ = (Index("ix_health_scores_tenant_at", "tenant_id", "at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="accounts.id", max_length=64, ondelete="CASCADE")
    at: datetime = utc_column(nullable=False)
    score: int
    band: str = Field(max_length=16)  # healthy | watch | at-risk
    factors: dict[str, Any] = json_column(dict)  # see opsloop.health.score.Assessment.to_json
    cause: str = Field(max_length=64)  # what made it recompute: INC-3 created, signals, daily ...


class HealthPrompt(SQLModel, table=True):
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

    id: int | None = Field(default=None, primary_key=True)
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
