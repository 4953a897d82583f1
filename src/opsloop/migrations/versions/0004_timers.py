"""timers: sla clocks, timer schedule, on-call overrides

Revision ID: 0004_timers
Revises: 0001
Create Date: 2026-11-22 11:31:20.428270
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import opsloop.models

revision = '0004_timers'
down_revision = '0003_runbooks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('oncall_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('starts_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('ends_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('cancelled_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('oncall_overrides', schema=None) as batch_op:
        batch_op.create_index('ix_oncall_overrides_team_ends', ['team', 'ends_at'], unique=False)

    op.create_table('sla_clocks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('target', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('policy_index', sa.Integer(), nullable=False),
    sa.Column('calendar', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('target_seconds', sa.Integer(), nullable=False),
    sa.Column('started_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('running_since', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('used_seconds', sa.Float(), nullable=False),
    sa.Column('due_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('paused_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('paused_seconds', sa.Float(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('settled_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('stopped_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sla_clocks', schema=None) as batch_op:
        batch_op.create_index('ix_sla_clocks_item_target', ['work_item_id', 'target', 'id'], unique=False)
        batch_op.create_index('ix_sla_clocks_settled_at', ['settled_at'], unique=False)

    op.create_table('timers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('due_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=True),
    sa.Column('clock_id', sa.Integer(), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('fired_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['clock_id'], ['sla_clocks.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.create_index('ix_timers_clock', ['clock_id'], unique=False)
        batch_op.create_index('ix_timers_item_kind', ['work_item_id', 'kind'], unique=False)
        batch_op.create_index('ix_timers_unfired_due', ['due_at', 'id'], unique=False, sqlite_where=sa.text('fired_at IS NULL'), postgresql_where=sa.text('fired_at IS NULL'))



def downgrade() -> None:
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.drop_index('ix_timers_unfired_due', sqlite_where=sa.text('fired_at IS NULL'), postgresql_where=sa.text('fired_at IS NULL'))
        batch_op.drop_index('ix_timers_item_kind')
        batch_op.drop_index('ix_timers_clock')

    op.drop_table('timers')
    with op.batch_alter_table('sla_clocks', schema=None) as batch_op:
        batch_op.drop_index('ix_sla_clocks_settled_at')
        batch_op.drop_index('ix_sla_clocks_item_target')

    op.drop_table('sla_clocks')
    with op.batch_alter_table('oncall_overrides', schema=None) as batch_op:
        batch_op.drop_index('ix_oncall_overrides_team_ends')

    op.drop_table('oncall_overrides')
