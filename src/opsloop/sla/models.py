"""The SLA's table: clocks against targets (their warnings and breaches are `opsloop.timers` rows).

A `SlaClock` measures one target (response, update, resolution) of one work
item in working time. Its time used is `used_seconds` (banked before the
current running stretch) plus the working time since `running_since`; pausing
banks the stretch and clears `running_since`, resuming starts a new stretch
and moves `due_at`. This is exact for business calendars, where a wall-clock
`paused_seconds` would not be (an hour paused overnight costs no working time).
`paused_seconds` is still kept, in wall time, for reports.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field

from opsloop.models import IdRow, utc_column

RUNNING, PAUSED, MET, BREACHED, STOPPED = "running", "paused", "met", "breached", "stopped"
# a response target that nobody answered: the alerts mitigated or resolved the item by themselves
NO_RESPONSE = "no_response"
SETTLED = (MET, BREACHED, NO_RESPONSE)


class SlaClock(IdRow, table=True):
    __tablename__ = "sla_clocks"
    __table_args__ = (
        Index("ix_sla_clocks_item_target", "work_item_id", "target", "id"),
        Index("ix_sla_clocks_settled_at", "settled_at"),
    )

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
