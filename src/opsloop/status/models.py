"""The tables of status pages: the key that signs tenant links (when none is given), and the links.

A link's token is its random `nonce` signed with the key (see
`opsloop.status.links`): the token says nothing about the tenant, a forged
one is refused before the database is asked, and a link stops working when
it is revoked (`revoked_at`) or when the key changes.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from opsloop.models import IdRow, utc_column


class StatusKey(SQLModel, table=True):
    """The signing key generated on first use when `OPSLOOP_STATUS_KEY` is not set (one row)."""

    __tablename__ = "status_keys"
    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    key: str = Field(max_length=128)
    created_at: datetime = utc_column(nullable=False)


class StatusLink(IdRow, table=True):
    """One tenant's status page link, active until revoked."""

    __tablename__ = "status_links"
    tenant_id: str = Field(foreign_key="accounts.id", index=True, max_length=64, ondelete="CASCADE")
    nonce: str = Field(max_length=64, unique=True)
    created_at: datetime = utc_column(nullable=False)
    created_by: str = Field(max_length=64)
    revoked_at: datetime | None = utc_column()
    revoked_by: str | None = Field(default=None, max_length=64)
