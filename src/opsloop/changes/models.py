"""A change event as stored: what changed, who said so, when, and the labels it was mapped to."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text
from sqlmodel import Field

from opsloop.models import IdRow, json_column, utc_column


class ChangeEvent(IdRow, table=True):
    __tablename__ = "change_events"
    __table_args__ = (Index("ix_change_events_service_at", "service", "happened_at"),)

    integration: str = Field(max_length=64)
    summary: str = Field(sa_column=Column(Text, nullable=False))
    source: str | None = Field(default=None, max_length=255)  # who made the change: ci, a person ...
    service: str | None = Field(default=None, max_length=255)  # the `service` label, to find it by
    labels: dict[str, Any] = json_column(dict)
    links: list[Any] = json_column(list)
    happened_at: datetime = utc_column(nullable=False)  # the event's timestamp, else when received
    received_at: datetime = utc_column(nullable=False)
