"""Who holds which incident role beyond commander and comms (those are the item's owner columns)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel, select
from sqlmodel.sql.expression import SelectOfScalar

from opsloop.models import utc_column


class IncidentRole(SQLModel, table=True):
    __tablename__ = "incident_roles"

    work_item_id: int = Field(foreign_key="work_items.id", primary_key=True, ondelete="CASCADE")
    role: str = Field(primary_key=True, max_length=32)
    user: str = Field(max_length=64, index=True)
    assigned_by: str = Field(max_length=64)
    assigned_at: datetime = utc_column(nullable=False)


def roles_held(person: str) -> SelectOfScalar[int]:
    """The ids of the work items where `person` holds a role (for `/incident list mine`)."""
    return select(IncidentRole.work_item_id).where(IncidentRole.user == person)
