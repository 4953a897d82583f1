"""digest: the per-day claim of the scheduled digest, indexes for its aggregations

Revision ID: 0009_digest
Revises: 0008_health
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opsloop.models

revision = '0009_digest'
down_revision = '0008_health'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('digest_runs',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('posted_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('reported_day', sa.Date(), nullable=False),
    sa.Column('message_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.PrimaryKeyConstraint('day')
    )
    with op.batch_alter_table('work_items', schema=None) as batch_op:
        batch_op.create_index('ix_work_items_acknowledged_at', ['acknowledged_at'], unique=False)
    with op.batch_alter_table('remediation_calls', schema=None) as batch_op:
        batch_op.create_index('ix_remediation_calls_finished_at', ['finished_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('remediation_calls', schema=None) as batch_op:
        batch_op.drop_index('ix_remediation_calls_finished_at')
    with op.batch_alter_table('work_items', schema=None) as batch_op:
        batch_op.drop_index('ix_work_items_acknowledged_at')
    op.drop_table('digest_runs')
