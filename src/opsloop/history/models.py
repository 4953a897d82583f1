"""Which work items were imported, from where: the mark of an imported item, and the key that makes
importing the same export again update rather than duplicate."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from opsloop.models import utc_column


class ImportedItem(SQLModel, table=True):
    __tablename__ = "imported_items"

    source: str = Field(primary_key=True, max_length=16)  # csv | pagerduty | oncall
    external_id: str = Field(primary_key=True, max_length=64)  # the id in the file
    work_item_id: int = Field(foreign_key="work_items.id", unique=True, ondelete="CASCADE")
    imported_at: datetime = utc_column(nullable=False)
    updated_at: datetime = utc_column(nullable=False)
