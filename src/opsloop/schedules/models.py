"""Each schedule's state: its pending tick (a durable `schedule.tick` timer) and its last task."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from opsloop.models import utc_column


class ScheduleState(SQLModel, table=True):
    __tablename__ = "schedule_states"

    name: str = Field(primary_key=True, max_length=64)
    fingerprint: str = Field(max_length=16)  # of the cron and time zone it was armed with
    next_at: datetime | None = utc_column()
    timer_id: int | None = Field(default=None)  # the pending `schedule.tick` timer
    last_tick_at: datetime | None = utc_column()  # the tick the last task was opened for
    last_item_id: int | None = Field(default=None, foreign_key="work_items.id", ondelete="SET NULL")
    ticks: int = 0
    skipped: int = 0
