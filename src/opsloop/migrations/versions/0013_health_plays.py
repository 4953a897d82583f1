"""health: plays and their steps, the daily score series and its claim, renewal outcomes, executive sponsors

Revision ID: 0013_health_plays
Revises: 0012_feeds
Create Date: 2026-11-26 08:27:51.328086
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import opsloop.models

revision = '0013_health_plays'
down_revision = '0012_feeds'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('health_daily_runs',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('ran_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('accounts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day')
    )
    op.create_table('health_daily',
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('band', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('units', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'day')
    )
    op.create_table('renewal_outcomes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('arr_before', sa.Integer(), nullable=False),
    sa.Column('arr_after', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('recorded_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'date', name='uq_renewal_outcomes_tenant_date')
    )
    with op.batch_alter_table('renewal_outcomes', schema=None) as batch_op:
        batch_op.create_index('ix_renewal_outcomes_date', ['date'], unique=False)

    op.create_table('health_plays',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('prompt_id', sa.Integer(), nullable=True),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('playbook_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('playbook_version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('playbook_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('opened_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('escalated_to', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('closed_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('closed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['prompt_id'], ['health_prompts.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('health_plays', schema=None) as batch_op:
        batch_op.create_index('ix_health_plays_closed_at', ['closed_at'], unique=False)
        batch_op.create_index('ix_health_plays_opened_at', ['opened_at'], unique=False)
        batch_op.create_index('uq_health_plays_open', ['tenant_id'], unique=True, sqlite_where=sa.text('closed_at IS NULL'), postgresql_where=sa.text('closed_at IS NULL'))

    op.create_table('health_play_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('play_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('step_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('due_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('done_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('done_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('reminders', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['play_id'], ['health_plays.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('health_play_steps', schema=None) as batch_op:
        batch_op.create_index('ix_health_play_steps_play', ['play_id', 'position'], unique=False)

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('executive_sponsor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('executive_sponsor')

    with op.batch_alter_table('health_play_steps', schema=None) as batch_op:
        batch_op.drop_index('ix_health_play_steps_play')

    op.drop_table('health_play_steps')
    with op.batch_alter_table('health_plays', schema=None) as batch_op:
        batch_op.drop_index('uq_health_plays_open', sqlite_where=sa.text('closed_at IS NULL'), postgresql_where=sa.text('closed_at IS NULL'))
        batch_op.drop_index('ix_health_plays_opened_at')
        batch_op.drop_index('ix_health_plays_closed_at')

    op.drop_table('health_plays')
    with op.batch_alter_table('renewal_outcomes', schema=None) as batch_op:
        batch_op.drop_index('ix_renewal_outcomes_date')

    op.drop_table('renewal_outcomes')
    op.drop_table('health_daily')
    op.drop_table('health_daily_runs')
