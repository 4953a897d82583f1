"""The durable timer schedule every feature uses: SLA warnings and breaches, escalation pages,
exception expiries, remediation gates, health prompts, maintenance windows, heartbeats, follow-up
and review reminders, schedules.

A `Timer` is one row of the schedule the sweeper works through (its `kind` names the
handler a feature registered in the one table of `opsloop/table.py`). `fired_at` is NULL until it fires,
and it is set in the same transaction as the timer's effect, so a timer fires
exactly once. No lease columns are needed for that: the effect is all
database writes (outbox rows included), so the row lock taken when claiming
it is held until they commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text, text
from sqlmodel import Field

from opsloop.models import IdRow, json_column, utc_column


class Timer(IdRow, table=True):
    __tablename__ = "timers"
    __table_args__ = (
        # the sweeper's claim reads only unfired rows in due order: a partial index keeps
        # it small however many fired rows pile up
        Index("ix_timers_unfired_due", "due_at", "id",
              sqlite_where=text("fired_at IS NULL"), postgresql_where=text("fired_at IS NULL")),
        Index("ix_timers_item_kind", "work_item_id", "kind"),
        Index("ix_timers_clock", "clock_id"),
    )

    kind: str = Field(max_length=32)  # warn | breach | page | ...
    due_at: datetime = utc_column(nullable=False)
    work_item_id: int | None = Field(default=None, foreign_key="work_items.id", ondelete="CASCADE")
    clock_id: int | None = Field(default=None, foreign_key="sla_clocks.id", ondelete="CASCADE")
    payload: dict[str, Any] = json_column(dict)
    created_at: datetime = utc_column(nullable=False)
    fired_at: datetime | None = utc_column()
    outcome: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
