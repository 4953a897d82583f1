"""Feedback loops, and the themes behind the product-priority rule."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field

from opsloop.models import IdRow, utc_column


class FeedbackLoop(IdRow, table=True):
    """One (work item, audience, recipient): open until its resolution notice was delivered."""

    __tablename__ = "feedback_loops"
    __table_args__ = (
        UniqueConstraint("work_item_id", "audience", "tenant_id", "transport", "target",
                         name="uq_feedback_loops_recipient"),
        Index("ix_feedback_loops_next_notice_at", "next_notice_at"),
    )

    work_item_id: int = Field(foreign_key="work_items.id", index=True, ondelete="CASCADE")
    audience: str = Field(max_length=16)
    tenant_id: str = Field(default="", max_length=64)  # "" for audiences that are not per account
    transport: str = Field(max_length=16)  # chat | email | webhook
    target: str = Field(max_length=254)
    opened_at: datetime = utc_column(nullable=False)
    next_notice_at: datetime | None = utc_column()  # the next cadence notice, while open
    notices: int = 0
    resolution_key: str | None = Field(default=None, max_length=200)  # outbox key of the last notice
    reported_at: datetime | None = utc_column()  # told the comms owner it stayed open


class ThemeHit(IdRow, table=True):
    """A work item touching a theme (runbook, service or `theme:` label) at a time."""

    __tablename__ = "theme_hits"
    __table_args__ = (Index("ix_theme_hits_theme_at", "theme", "at"),)

    work_item_id: int = Field(foreign_key="work_items.id", index=True, ondelete="CASCADE")
    theme: str = Field(max_length=128)
    at: datetime = utc_column(nullable=False)


class PriorityNotice(IdRow, table=True):
    """A product-priority post, so a theme is raised once per window."""

    __tablename__ = "priority_notices"
    theme: str = Field(max_length=128, index=True)
    at: datetime = utc_column(nullable=False)
    tenants: int
    arr: int
