"""intake: alerts and alert groups

Revision ID: 0005_intake
Revises: 0001
Create Date: 2026-11-22 11:34:02.626292
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import opsloop.models

revision = '0005_intake'
down_revision = '0004_timers'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('integration', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('group_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('group_key', sa.Text(), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alert_groups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_groups_work_item_id'), ['work_item_id'], unique=False)
        batch_op.create_index('uq_alert_groups_active_key', ['integration', 'group_hash'], unique=True, sqlite_where=sa.text('active'), postgresql_where=sa.text('active'))

    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('integration', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('first_seen_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('resolved_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('seen', sa.Integer(), nullable=False),
    sa.Column('flaps', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_work_item_id'), ['work_item_id'], unique=False)
        batch_op.create_index('uq_alerts_active_key', ['integration', 'key'], unique=True, sqlite_where=sa.text('active'), postgresql_where=sa.text('active'))



def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('uq_alerts_active_key', sqlite_where=sa.text('active'), postgresql_where=sa.text('active'))
        batch_op.drop_index(batch_op.f('ix_alerts_work_item_id'))

    op.drop_table('alerts')
    with op.batch_alter_table('alert_groups', schema=None) as batch_op:
        batch_op.drop_index('uq_alert_groups_active_key', sqlite_where=sa.text('active'), postgresql_where=sa.text('active'))
        batch_op.drop_index(batch_op.f('ix_alert_groups_work_item_id'))

    op.drop_table('alert_groups')
