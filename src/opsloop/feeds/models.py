"""The loaded iCal feed of each on-call team: shared by every replica, replaced by a refresh."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from opsloop.models import json_column, utc_column


class OnCallFeed(SQLModel, table=True):
    __tablename__ = "oncall_feeds"

    team: str = Field(primary_key=True, max_length=64)
    source: str = Field(max_length=500)  # the file it was read from
    sha256: str = Field(max_length=64)  # of `content`: replicas re-read the feed when it changes
    content: str = Field(sa_column=Column(Text, nullable=False))
    # how the feed's people map to Slack: email or name (lower case) -> user id
    people: dict[str, str] = json_column(dict)
    loaded_at: datetime = utc_column(nullable=False)
    loaded_by: str = Field(max_length=64)
