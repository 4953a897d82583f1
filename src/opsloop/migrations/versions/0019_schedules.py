"""schedules: each schedule's pending tick and last task; the counter of task ids (TSK-n)

Revision ID: 0019_schedules
Revises: 0018_rollouts
Create Date: 2026-11-26 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opsloop.models

revision = '0019_schedules'
down_revision = '0018_rollouts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule_states",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("next_at", opsloop.models.UTCDateTime(), nullable=True),
        sa.Column("timer_id", sa.Integer(), nullable=True),
        sa.Column("last_tick_at", opsloop.models.UTCDateTime(), nullable=True),
        sa.Column("last_item_id", sa.Integer(), nullable=True),
        sa.Column("ticks", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["last_item_id"], ["work_items.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("name"),
    )
    op.bulk_insert(
        sa.table("counters", sa.column("name"), sa.column("value")), [{"name": "task", "value": 0}]
    )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM counters WHERE name = 'task'"))
    op.drop_table("schedule_states")
