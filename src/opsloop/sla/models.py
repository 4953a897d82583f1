"""Tables of the SLA machinery: clocks against targets, the durable timer schedule, on-call overrides.

A `SlaClock` measures one target (response, update, resolution) of one work
item in working time. Its time used is `used_seconds` (banked before the
current running stretch) plus the working time since `running_since`; pausing
banks the stretch and clears `running_since`, resuming starts a new stretch
and moves `due_at`. This is exact for business calendars, where a wall-clock
`paused_seconds` would not be (an hour paused overnight costs no working time).
`paused_seconds` is still kept, in wall time, for reports.

A `Timer` is one row of the schedule the sweeper works through: warnings and
breaches of clocks, and escalation pages. `fired_at` is NULL until it fires,
and it is set in the same transaction as the timer's effect, so a timer fires
exactly once. No lease columns are needed for that: the effect is all
database writes (outbox rows included), so the row lock taken when claiming
it is held until they commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text, text
from sqlmodel import Field, SQLModel

from opsloop.models import json_column, utc_column

RUNNING, PAUSED, MET, BREACHED, STOPPED = "running", "paused", "met", "breached", "stopped"
# a response target that nobody answered: the alerts mitigated or resolved the item by themselves
NO_RESPONSE = "no_response"
SETTLED = (MET, BREACHED, NO_RESPONSE)


class SlaClock(SQLModel, table=True):
    __tablename__ = "sla_clocks"
    __table_args__ = (
        Index("ix_sla_clocks_item_target", "work_item_id", "target", "id"),
        Index("ix_sla_clocks_settled_at", "settled_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    work_item_id: int = Field(foreign_key="work_items.id", ondelete="CASCADE")
    target: str = Field(max_length=16)  # response | update | resolution
    policy_index: int  # which sla.policies entry matched
    calendar: str = Field(max_length=64)  # a name under sla.calendars, or 24x7
    target_seconds: int
    started_at: datetime = utc_column(nullable=False)
    running_since: datetime | None = utc_column()  # None unless running
    used_seconds: float = 0.0  # working time used before running_since
    due_at: datetime | None = utc_column()  # None while paused
    paused_at: datetime | None = utc_column()
    paused_seconds: float = 0.0  # wall time spent paused, for reports
    state: str = Field(default=RUNNING, max_length=16)
    settled_at: datetime | None = utc_column()  # when it became met or breached
    stopped_at: datetime | None = utc_column()  # when what it measures happened (ack, resolve ...)


class Timer(SQLModel, table=True):
    __tablename__ = "timers"
    __table_args__ = (
        # the sweeper's claim reads only unfired rows in due order: a partial index keeps
        # it small however many fired rows pile up
        Index("ix_timers_unfired_due", "due_at", "id",
              sqlite_where=text("fired_at IS NULL"), postgresql_where=text("fired_at IS NULL")),
        Index("ix_timers_item_kind", "work_item_id", "kind"),
        Index("ix_timers_clock", "clock_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)  # warn | breach | page | ...
    due_at: datetime = utc_column(nullable=False)
    work_item_id: int | None = Field(default=None, foreign_key="work_items.id", ondelete="CASCADE")
    clock_id: int | None = Field(default=None, foreign_key="sla_clocks.id", ondelete="CASCADE")
    payload: dict[str, Any] = json_column(dict)
    created_at: datetime = utc_column(nullable=False)
    fired_at: datetime | None = utc_column()
    outcome: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class OnCallOverride(SQLModel, table=True):
    """`user` covers `team` from `starts_at` until `ends_at`; the newest override wins."""

    __tablename__ = "oncall_overrides"
    __table_args__ = (Index("ix_oncall_overrides_team_ends", "team", "ends_at"),)

    id: int | None = Field(default=None, primary_key=True)
    team: str = Field(max_length=64)
    user: str = Field(max_length=64)
    starts_at: datetime = utc_column(nullable=False)
    ends_at: datetime = utc_column(nullable=False)
    created_by: str = Field(max_length=64)
    created_at: datetime = utc_column(nullable=False)
    cancelled_at: datetime | None = utc_column()
