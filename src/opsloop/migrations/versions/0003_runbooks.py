"""runbooks: snapshots, runs, step runs

Revision ID: 0003_runbooks
Revises: 0001
Create Date: 2026-11-22 11:31:18.740613
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import opsloop.models

revision = '0003_runbooks'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('runbook_snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('runbook_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('first_seen', opsloop.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sha256')
    )
    with op.batch_alter_table('runbook_snapshots', schema=None) as batch_op:
        batch_op.create_index('ix_runbook_snapshots_runbook_version', ['runbook_id', 'version'], unique=False)

    op.create_table('runbook_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('snapshot_id', sa.Integer(), nullable=False),
    sa.Column('runbook_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('inputs', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('started_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('started_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('finished_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['snapshot_id'], ['runbook_snapshots.id'], ),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('runbook_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runbook_runs_runbook_id'), ['runbook_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_runbook_runs_snapshot_id'), ['snapshot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_runbook_runs_work_item_id'), ['work_item_id'], unique=False)

    op.create_table('runbook_step_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('step_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('outputs', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('approvals', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('updated_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('finished_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runbook_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'step_id', name='uq_runbook_step_runs_run_step')
    )
    with op.batch_alter_table('runbook_step_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runbook_step_runs_finished_at'), ['finished_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_runbook_step_runs_run_id'), ['run_id'], unique=False)
        batch_op.create_index('ix_runbook_step_runs_step_state', ['step_id', 'state'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('runbook_step_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runbook_step_runs_step_state')
        batch_op.drop_index(batch_op.f('ix_runbook_step_runs_run_id'))
        batch_op.drop_index(batch_op.f('ix_runbook_step_runs_finished_at'))

    op.drop_table('runbook_step_runs')
    with op.batch_alter_table('runbook_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runbook_runs_work_item_id'))
        batch_op.drop_index(batch_op.f('ix_runbook_runs_snapshot_id'))
        batch_op.drop_index(batch_op.f('ix_runbook_runs_runbook_id'))

    op.drop_table('runbook_runs')
    with op.batch_alter_table('runbook_snapshots', schema=None) as batch_op:
        batch_op.drop_index('ix_runbook_snapshots_runbook_version')

    op.drop_table('runbook_snapshots')
