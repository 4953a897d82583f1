"""loops: feedback loops, themes, product priority, account webhooks

Revision ID: 0006_loops
Revises: 0005_intake
Create Date: 2026-11-22 11:41:05.555594
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opsloop.models

revision = '0006_loops'
down_revision = '0005_intake'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('priority_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('theme', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('tenants', sa.Integer(), nullable=False),
    sa.Column('arr', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('priority_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_priority_notices_theme'), ['theme'], unique=False)

    op.create_table('feedback_loops',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('audience', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('transport', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('target', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('opened_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('next_notice_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('notices', sa.Integer(), nullable=False),
    sa.Column('resolution_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('reported_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('work_item_id', 'audience', 'tenant_id', 'transport', 'target', name='uq_feedback_loops_recipient')
    )
    with op.batch_alter_table('feedback_loops', schema=None) as batch_op:
        batch_op.create_index('ix_feedback_loops_next_notice_at', ['next_notice_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_feedback_loops_work_item_id'), ['work_item_id'], unique=False)

    op.create_table('theme_hits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('theme', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('at', opsloop.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('theme_hits', schema=None) as batch_op:
        batch_op.create_index('ix_theme_hits_theme_at', ['theme', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_theme_hits_work_item_id'), ['work_item_id'], unique=False)

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_url', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('webhook_url')

    with op.batch_alter_table('theme_hits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_theme_hits_work_item_id'))
        batch_op.drop_index('ix_theme_hits_theme_at')

    op.drop_table('theme_hits')
    with op.batch_alter_table('feedback_loops', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_loops_work_item_id'))
        batch_op.drop_index('ix_feedback_loops_next_notice_at')

    op.drop_table('feedback_loops')
    with op.batch_alter_table('priority_notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_priority_notices_theme'))

    op.drop_table('priority_notices')
