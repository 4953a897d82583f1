"""comms: customer notices in review, approved public updates, items marked public

Revision ID: 0020_comms
Revises: 0019_schedules
Create Date: 2026-11-26 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import opsloop.models

revision = '0020_comms'
down_revision = '0019_schedules'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('notice_drafts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('audience', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('tenants', JSON, nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('posted_to', JSON, nullable=False),
    sa.Column('decided_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('superseded_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notice_drafts', schema=None) as batch_op:
        batch_op.create_index('ix_notice_drafts_item_status', ['work_item_id', 'status'], unique=False)
    op.create_table('public_updates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('approved_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('approved_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('draft_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['draft_id'], ['notice_drafts.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('public_updates', schema=None) as batch_op:
        batch_op.create_index('ix_public_updates_item_at', ['work_item_id', 'approved_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_public_updates_tenant_id'), ['tenant_id'], unique=False)
    op.create_table('public_items',
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('set_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('set_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('work_item_id')
    )


def downgrade() -> None:
    op.drop_table('public_items')
    with op.batch_alter_table('public_updates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_public_updates_tenant_id'))
        batch_op.drop_index('ix_public_updates_item_at')
    op.drop_table('public_updates')
    with op.batch_alter_table('notice_drafts', schema=None) as batch_op:
        batch_op.drop_index('ix_notice_drafts_item_status')
    op.drop_table('notice_drafts')
