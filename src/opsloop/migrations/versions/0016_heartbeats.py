"""heartbeats: each one's state, deadline and pending timer, and the incident of a miss

Revision ID: 0016_heartbeats
Revises: 0015_alert_context
Create Date: 2026-11-27 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opsloop.models

revision = '0016_heartbeats'
down_revision = '0015_alert_context'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('heartbeats',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('armed_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('last_checkin_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('due_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('timer_id', sa.Integer(), nullable=True),
    sa.Column('missed_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('work_item_id', sa.Integer(), nullable=True),
    sa.Column('checkins', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('heartbeats')
