"""maintenance windows: MNT-n work items, their matchers, times, silences and paused items

Revision ID: 0022_maintenance
Revises: 0021_status
Create Date: 2026-11-26 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import opsloop.models

revision = '0022_maintenance'
down_revision = '0021_status'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('maintenance_windows',
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('matchers', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('starts_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('ends_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('ended_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('silences', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('paused', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('work_item_id')
    )
    op.create_index(op.f('ix_maintenance_windows_starts_at'), 'maintenance_windows', ['starts_at'], unique=False)
    op.create_index(op.f('ix_maintenance_windows_ends_at'), 'maintenance_windows', ['ends_at'], unique=False)
    # MNT-n numbers, like INC-n
    op.bulk_insert(sa.table("counters", sa.column("name"), sa.column("value")),
                   [{"name": "maintenance", "value": 0}])


def downgrade() -> None:
    op.execute("DELETE FROM counters WHERE name = 'maintenance'")
    op.drop_index(op.f('ix_maintenance_windows_ends_at'), table_name='maintenance_windows')
    op.drop_index(op.f('ix_maintenance_windows_starts_at'), table_name='maintenance_windows')
    op.drop_table('maintenance_windows')
