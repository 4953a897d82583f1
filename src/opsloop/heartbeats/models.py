"""Each heartbeat's state: when it last checked in, when it is missed, the incident of a miss."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from opsloop.models import utc_column

WAITING, UP, DOWN = "waiting", "up", "down"  # armed, never heard from / checking in / missed


class HeartbeatState(SQLModel, table=True):
    __tablename__ = "heartbeats"

    name: str = Field(primary_key=True, max_length=64)
    state: str = Field(default=WAITING, max_length=16)
    fingerprint: str = Field(max_length=16)  # of the schedule it was armed with
    armed_at: datetime = utc_column(nullable=False)
    last_checkin_at: datetime | None = utc_column()
    due_at: datetime | None = utc_column()  # missed if no check-in by then (None while down)
    timer_id: int | None = Field(default=None)  # the pending `heartbeat.due` timer
    missed_at: datetime | None = utc_column()
    work_item_id: int | None = Field(default=None, foreign_key="work_items.id", ondelete="SET NULL")
    checkins: int = 0
