"""The tables. Timestamps are stored as naive UTC and read back as aware UTC.

Families follow the SQLModel convention: `Thing(table=True)` is the row;
plain data for creating one lives next to the service that creates it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Text, TypeDecorator, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, naive UTC on disk (same on every backend)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def utc_column(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def json_column(default: Any) -> Any:
    return Field(default_factory=default, sa_column=Column(JSONType, nullable=False))


class IdRow(SQLModel):
    """The columns of a table whose rows the database numbers: `id`, None until the row is flushed."""

    id: int | None = Field(default=None, primary_key=True)


class Account(SQLModel, table=True):
    """A customer account (tenant)."""

    __tablename__ = "accounts"
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    tier: str = Field(default="smb", max_length=16, index=True)
    arr: int = 0
    renewal_date: date | None = None
    csm: str | None = Field(default=None, max_length=64, index=True)
    sales_owner: str | None = Field(default=None, max_length=64)
    support_channel: str | None = Field(default=None, max_length=64)
    contact_email: str | None = Field(default=None, max_length=254)
    region: str | None = Field(default=None, max_length=32)
    webhook_url: str | None = Field(default=None, max_length=500)  # the customer's status webhook
    # our executive who owns the relationship: told when a play opens on a high-risk account
    executive_sponsor: str | None = Field(default=None, max_length=64)
    # its own maintenance window, e.g. "sun 02:00-06:00" in the policy's timezone (opsloop.tenant_windows)
    window: str | None = Field(default=None, max_length=64)
    updated_at: datetime | None = utc_column()


class Counter(SQLModel, table=True):
    """Per-kind sequence behind the human ids (INC-1, ESC-1, EXC-1)."""

    __tablename__ = "counters"
    name: str = Field(primary_key=True, max_length=32)
    value: int = 0


class WorkItem(IdRow, table=True):
    """An incident, escalation or exception, with the time of every transition."""

    __tablename__ = "work_items"
    __table_args__ = (
        UniqueConstraint("kind", "number", name="uq_work_items_kind_number"),
        Index("ix_work_items_kind_state", "kind", "state"),
    )

    ref: str = Field(max_length=32, unique=True)
    kind: str = Field(max_length=16)
    number: int
    title: str = Field(max_length=300)
    severity: str = Field(max_length=8)
    state: str = Field(max_length=16)
    owner: str | None = Field(default=None, max_length=64)
    comms_owner: str | None = Field(default=None, max_length=64)
    created_by: str = Field(max_length=64)
    channel: str | None = Field(default=None, max_length=64)
    labels: dict[str, str] = json_column(dict)
    created_at: datetime = utc_column(nullable=False, index=True)
    updated_at: datetime = utc_column(nullable=False)
    acknowledged_at: datetime | None = utc_column()
    mitigated_at: datetime | None = utc_column()
    resolved_at: datetime | None = utc_column(index=True)
    closed_at: datetime | None = utc_column()
    decided_at: datetime | None = utc_column()  # exceptions: approved or rejected
    expires_at: datetime | None = utc_column()  # exceptions: when an approval lapses
    expired_at: datetime | None = utc_column()


class WorkItemTenant(SQLModel, table=True):
    """Which accounts a work item affects."""

    __tablename__ = "work_item_tenants"
    work_item_id: int = Field(foreign_key="work_items.id", primary_key=True, ondelete="CASCADE")
    tenant_id: str = Field(foreign_key="accounts.id", primary_key=True, index=True, max_length=64)


class TimelineEvent(IdRow, table=True):
    """A line in a work item's story, as people read it."""

    __tablename__ = "timeline_events"
    work_item_id: int = Field(foreign_key="work_items.id", index=True, ondelete="CASCADE")
    at: datetime = utc_column(nullable=False)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    text: str = Field(sa_column=Column(Text, nullable=False))


class AuditEvent(SQLModel, table=True):
    """One link of the append-only, hash-chained audit log."""

    __tablename__ = "audit_events"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = utc_column(nullable=False, index=True)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    subject: str = Field(max_length=128, index=True)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    # JSON Pointers of the personal values in before/after: each holds a commitment, the value
    # lives in `audit_personal` (see opsloop.compliance.personal); NULL when there are none
    personal: list[str] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The chain's newest link: the row writers lock, and the anchor that shows a deleted tail."""

    __tablename__ = "audit_head"
    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(max_length=64)


class OutboxMessage(IdRow, table=True):
    """A message to the outside world, written in the transaction that caused it.

    `lane` (transport + target) keeps order: only the oldest pending message
    of a lane is delivered. `update_key` / `thread_key` name an earlier
    message (by `key`) to edit in place or reply under; the sender finds its
    `external_id` (Slack's ts) there.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_lane_id", "status", "lane", "id"),)

    key: str = Field(max_length=200, unique=True)
    transport: str = Field(max_length=16)
    target: str = Field(max_length=254)
    lane: str = Field(max_length=280)
    thread_key: str | None = Field(default=None, max_length=200)
    update_key: str | None = Field(default=None, max_length=200)
    payload: dict[str, Any] = json_column(dict)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = utc_column(nullable=False)
    leased_until: datetime | None = utc_column()
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = utc_column(nullable=False)
    sent_at: datetime | None = utc_column()
    external_id: str | None = Field(default=None, max_length=64)
    external_target: str | None = Field(default=None, max_length=254)


class OutboxAttempt(IdRow, table=True):
    """One try at delivering an outbox message."""

    __tablename__ = "outbox_attempts"
    message_id: int = Field(foreign_key="outbox.id", index=True, ondelete="CASCADE")
    at: datetime = utc_column(nullable=False)
    ok: bool
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    duration_ms: int = 0
