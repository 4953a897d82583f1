"""Tables of reviews and follow-ups.

A `FollowUp` (`ACT-n`) is a piece of work a review asks for: what, an owner, a due date on the
business calendar, and a close with a note. It belongs to the work item it came from and to that
item's themes (`theme:`, `service:` or `runbook:`), so a later item on the same theme can tell
that it recurred after the follow-ups were closed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from opsloop.models import IdRow, json_column, utc_column

FOLLOWUP_COUNTER = "followup"  # the counters row behind ACT-n
# the sections people write, in the order the document and the form show them
SECTIONS = (
    ("summary", "Summary"),
    ("contributing_factors", "Contributing factors"),
    ("went_well", "What went well"),
    ("went_badly", "What went badly"),
    ("public_what_happened", "For customers: what happened"),
    ("public_what_we_changed", "For customers: what we changed"),
)
MAX_SECTION = 3000  # a Slack modal's multiline input holds at most 3000 characters


class FollowUp(IdRow, table=True):
    __tablename__ = "followups"
    __table_args__ = (
        Index("ix_followups_open_due", "closed_at", "due_at"),
        Index("ix_followups_owner", "owner"),
    )

    ref: str = Field(max_length=32, unique=True)  # ACT-n
    number: int
    work_item_id: int = Field(foreign_key="work_items.id", index=True, ondelete="CASCADE")
    what: str = Field(sa_column=Column(Text, nullable=False))
    owner: str = Field(max_length=64)
    link: str | None = Field(default=None, max_length=500)
    themes: list[str] = json_column(list)  # the item's themes when the follow-up was made
    created_by: str = Field(max_length=64)
    created_at: datetime = utc_column(nullable=False)
    due_at: datetime = utc_column(nullable=False)
    reminders: int = 0
    closed_at: datetime | None = utc_column()
    closed_by: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))



DRAFT, IN_REVIEW, PUBLISHED = "draft", "in review", "published"
REVIEW_STATES = (DRAFT, IN_REVIEW, PUBLISHED)


class Review(IdRow, table=True):
    """The post-incident review of one work item: an owner, a due date, draft -> in review -> published.

    Its words live in `ReviewVersion` rows, one per save; `version` is the newest. Once published,
    `sha256` is the hash of that version's canonical JSON, also written to the audit chain."""

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_state_due", "state", "due_at"),)

    work_item_id: int = Field(foreign_key="work_items.id", unique=True, ondelete="CASCADE")
    owner: str = Field(max_length=64)
    state: str = Field(default=DRAFT, max_length=16)
    version: int = 1
    drafted_at: datetime = utc_column(nullable=False)
    drafted_by: str = Field(max_length=64)
    due_at: datetime = utc_column(nullable=False)
    reminders: int = 0
    submitted_at: datetime | None = utc_column()
    published_at: datetime | None = utc_column()
    published_by: str | None = Field(default=None, max_length=64)
    sha256: str | None = Field(default=None, max_length=64)


class ReviewVersion(IdRow, table=True):
    """One save of a review: the whole document (facts drafted from the record, people's sections)."""

    __tablename__ = "review_versions"
    __table_args__ = (UniqueConstraint("review_id", "version", name="uq_review_versions_review_version"),)

    review_id: int = Field(foreign_key="reviews.id", ondelete="CASCADE")
    version: int
    saved_at: datetime = utc_column(nullable=False)
    saved_by: str = Field(max_length=64)
    content: dict[str, Any] = json_column(dict)


class ItemTheme(SQLModel, table=True):
    """The theme of a work item when it was created (see `reviews.themes`): what its follow-ups are
    about, and what a later item recurs on."""

    __tablename__ = "item_themes"

    work_item_id: int = Field(foreign_key="work_items.id", primary_key=True, ondelete="CASCADE")
    theme: str = Field(max_length=128, index=True)


class Recurrence(SQLModel, table=True):
    """A work item that hit a theme whose follow-ups were all closed: `followup_id` is the one closed
    last, `closed_at` when."""

    __tablename__ = "recurrences"

    work_item_id: int = Field(foreign_key="work_items.id", primary_key=True, ondelete="CASCADE")
    theme: str = Field(max_length=128)
    followup_id: int = Field(foreign_key="followups.id", ondelete="CASCADE")
    closed_at: datetime = utc_column(nullable=False)
    at: datetime = utc_column(nullable=False, index=True)
