"""Alerts as opsloop remembers them: one row per alert incarnation, one per Alertmanager group."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text, text
from sqlmodel import Field

from opsloop.models import IdRow, json_column, utc_column


def one_active(name: str, key: str) -> Index:
    """At most one `active` row per integration and `key`: a partial unique index, so two concurrent
    senders cannot open two incidents for one alert or one group."""
    return Index(name, "integration", key, unique=True,
                 sqlite_where=text("active"), postgresql_where=text("active"))


class Alert(IdRow, table=True):
    """An alert (Alertmanager fingerprint or Events v2 dedup key) and the incident it belongs to.

    `active` rows are the current incarnation of their key: at most one per
    integration and key (a partial unique index, so two concurrent senders
    cannot open two incidents for one alert). A row stops being active when
    its incident is resolved (or, for Events v2, when the alert resolves), so
    the next trigger with that key opens a new incident.
    """

    __tablename__ = "alerts"
    __table_args__ = (one_active("uq_alerts_active_key", "key"),)

    integration: str = Field(max_length=64)
    key: str = Field(max_length=255)
    work_item_id: int = Field(foreign_key="work_items.id", index=True, ondelete="CASCADE")
    active: bool = True
    status: str = Field(default="firing", max_length=16)  # firing | resolved
    summary: str = Field(default="", sa_column=Column(Text, nullable=False))
    labels: dict[str, Any] = json_column(dict)
    first_seen_at: datetime = utc_column(nullable=False)
    last_seen_at: datetime = utc_column(nullable=False)
    resolved_at: datetime | None = utc_column()
    seen: int = 1  # how many times a sender told us about it (repeat_interval re-sends)
    flaps: int = 0  # resolved, then firing again
    # what the sender said beyond labels, for the card: annotations and the generator URL
    # (Alertmanager); links, images, client and client URL (Events v2)
    context: dict[str, Any] = json_column(dict)


class AlertGroup(IdRow, table=True):
    """An Alertmanager group (`groupKey`): all its alerts belong to one incident."""

    __tablename__ = "alert_groups"
    __table_args__ = (one_active("uq_alert_groups_active_key", "group_hash"),)

    integration: str = Field(max_length=64)
    group_hash: str = Field(max_length=64)  # SHA-256 of the groupKey, which can be long
    group_key: str = Field(sa_column=Column(Text, nullable=False))
    work_item_id: int = Field(foreign_key="work_items.id", index=True, ondelete="CASCADE")
    active: bool = True
    created_at: datetime = utc_column(nullable=False)
    # the newest webhook's group labels, common labels and annotations, and Alertmanager's URL
    context: dict[str, Any] = json_column(dict)


class InboxEntry(IdRow, table=True):
    """A webhook accepted and not yet turned into incidents: `opsloop.intake.inbox`.

    The HTTP intake answers once its request is stored here (a group commit), so a storm is
    accepted at the speed of an insert; the inbox worker then processes the entries in `id` order,
    each batch in the transaction that deletes them, so every entry is processed exactly once.
    An entry that cannot be processed even alone is kept with `failed_at` and its error."""

    __tablename__ = "intake_inbox"

    integration: str = Field(max_length=64)
    kind: str = Field(max_length=16)  # alertmanager | events_v2
    body: str = Field(sa_column=Column(Text, nullable=False))  # the payload as received (valid JSON)
    dedup_key: str | None = Field(default=None, max_length=255)  # Events v2: the key answered
    received_at: datetime = utc_column(nullable=False)
    failed_at: datetime | None = utc_column()
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
