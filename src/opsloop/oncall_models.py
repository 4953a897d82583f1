"""The on-call table: overrides of a rotation (`/oncall override`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field

from opsloop.models import IdRow, utc_column


class OnCallOverride(IdRow, table=True):
    """`user` covers `team` from `starts_at` until `ends_at`; the newest override wins."""

    __tablename__ = "oncall_overrides"
    __table_args__ = (Index("ix_oncall_overrides_team_ends", "team", "ends_at"),)

    team: str = Field(max_length=64)
    user: str = Field(max_length=64)
    starts_at: datetime = utc_column(nullable=False)
    ends_at: datetime = utc_column(nullable=False)
    created_by: str = Field(max_length=64)
    created_at: datetime = utc_column(nullable=False)
    cancelled_at: datetime | None = utc_column()
