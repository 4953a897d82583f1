"""rollouts: per-tenant call states of foreach steps

Revision ID: 0018_rollouts
Revises: 0017_compliance
Create Date: 2026-11-26 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import opsloop.models

revision = '0018_rollouts'
down_revision = '0017_compliance'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rollouts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('step_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('targets', sa.Integer(), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('waves', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('allowed_errors', sa.Integer(), nullable=False),
    sa.Column('forgiven', sa.Integer(), nullable=False),
    sa.Column('next_wave_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('approvals', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('binding', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('approval_expires_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('clock_id', sa.Integer(), nullable=True),
    sa.Column('halted_reason', sa.Text(), nullable=True),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('started_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('updated_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('finished_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['clock_id'], ['sla_clocks.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['run_id'], ['runbook_runs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'step_id', name='uq_rollouts_run_step')
    )
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.create_index('ix_rollouts_state', ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_rollouts_work_item_id'), ['work_item_id'], unique=False)

    op.create_table('rollout_targets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rollout_id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('request', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('rollback_status', sa.Integer(), nullable=True),
    sa.Column('rollback_error', sa.Text(), nullable=True),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('lease_until', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('orphaned', sa.Boolean(), nullable=False),
    sa.Column('started_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('finished_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('rollout_id', 'tenant_id', name='uq_rollout_targets_tenant')
    )
    with op.batch_alter_table('rollout_targets', schema=None) as batch_op:
        batch_op.create_index('ix_rollout_targets_claim', ['rollout_id', 'state', 'position'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('rollout_targets', schema=None) as batch_op:
        batch_op.drop_index('ix_rollout_targets_claim')

    op.drop_table('rollout_targets')
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rollouts_work_item_id'))
        batch_op.drop_index('ix_rollouts_state')

    op.drop_table('rollouts')
