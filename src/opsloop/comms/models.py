"""What customers may hear and see, and who decided it.

- `NoticeDraft`: a notice to an audience in review (by default: customers), waiting for a person
  allowed `notice.approve` (or the item's comms owner) to Send, Edit or Skip it. A draft describes
  one state of its item; when the item moves on before anyone sends it, it is superseded.
- `PublicUpdate`: a public update a person approved (sent). The status pages (`GET /status`,
  `GET /status/t/TOKEN`) show these and nothing else: read them with `public_updates(session,
  item_id, tenant=...)`.
- `PublicItem`: a work item its comms owner marked public (`/incident public INC-n on|off`): it
  appears on the public status page (`GET /status`); read with `is_public` / `public_item_ids`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, or_
from sqlmodel import Field, Session, SQLModel, col, select

from opsloop.models import IdRow, json_column, utc_column

PENDING, SENT, SKIPPED, SUPERSEDED = "pending", "sent", "skipped", "superseded"


class NoticeDraft(IdRow, table=True):
    """A notice in review: `text` is the public wording every tenant's notice carries."""

    __tablename__ = "notice_drafts"
    __table_args__ = (Index("ix_notice_drafts_item_status", "work_item_id", "status"),)

    work_item_id: int = Field(foreign_key="work_items.id", ondelete="CASCADE")
    audience: str = Field(max_length=16)
    event: str = Field(max_length=16)  # start | update | cadence | resolution
    state: str = Field(max_length=16)  # the item's state it describes
    tenants: list[str] = json_column(list)  # whom it goes to
    text: str = Field(sa_column=Column(Text, nullable=False))  # tenant-free, shown on status pages too
    status: str = Field(default=PENDING, max_length=16)
    created_at: datetime = utc_column(nullable=False)
    created_by: str = Field(max_length=64)
    posted_to: list[str] = json_column(list)  # the people it was posted to for review
    decided_at: datetime | None = utc_column()
    decided_by: str | None = Field(default=None, max_length=64)
    superseded_by: int | None = Field(default=None)


class PublicUpdate(IdRow, table=True):
    """An update a person approved and sent: what status pages show, newest last."""

    __tablename__ = "public_updates"
    __table_args__ = (Index("ix_public_updates_item_at", "work_item_id", "approved_at"),)

    work_item_id: int = Field(foreign_key="work_items.id", ondelete="CASCADE")
    # None: for everyone the item touches (and the public page, when the item is public);
    # a tenant id: for that tenant only (e.g. the notice of a tenant named later)
    tenant_id: str | None = Field(default=None, max_length=64, index=True)
    state: str = Field(max_length=16)  # the item's state it describes
    event: str = Field(max_length=16)  # start | update | cadence | resolution
    text: str = Field(sa_column=Column(Text, nullable=False))
    approved_by: str = Field(max_length=64)
    approved_at: datetime = utc_column(nullable=False)
    draft_id: int | None = Field(default=None, foreign_key="notice_drafts.id", ondelete="SET NULL")


class PublicItem(SQLModel, table=True):
    """A work item shown on the public status page; no row: not public."""

    __tablename__ = "public_items"

    work_item_id: int = Field(foreign_key="work_items.id", primary_key=True, ondelete="CASCADE")
    set_by: str = Field(max_length=64)
    set_at: datetime = utc_column(nullable=False)


def public_updates(session: Session, item_id: int, *, tenant: str | None = None) -> list[PublicUpdate]:
    """The approved updates of an item, oldest first. `tenant=None`: only the tenant-free ones (safe
    for the public page); `tenant="acme"`: those plus the ones sent to acme alone."""
    query = select(PublicUpdate).where(PublicUpdate.work_item_id == item_id)
    if tenant is None:
        query = query.where(col(PublicUpdate.tenant_id).is_(None))
    else:
        query = query.where(or_(col(PublicUpdate.tenant_id).is_(None), col(PublicUpdate.tenant_id) == tenant))
    return list(session.exec(query.order_by(col(PublicUpdate.approved_at), col(PublicUpdate.id))))


def last_public_update(session: Session, item_id: int, *, tenant: str | None = None,
                       events: tuple[str, ...] = ()) -> PublicUpdate | None:
    """The newest approved update (of these events, when named)."""
    found = [u for u in public_updates(session, item_id, tenant=tenant) if not events or u.event in events]
    return found[-1] if found else None


def is_public(session: Session, item_id: int) -> bool:
    return session.get(PublicItem, item_id) is not None


def public_item_ids(session: Session) -> list[int]:
    """Every work item marked public, in the order they were marked."""
    return list(session.exec(select(PublicItem.work_item_id).order_by(col(PublicItem.set_at))))
