"""remediation: http step calls and approval rounds

Revision ID: 0007_remediation
Revises: 0006_loops
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import opsloop.models

revision = '0007_remediation'
down_revision = '0006_loops'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('approval_rounds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('step_run_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('binding', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('requested_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('closed_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.ForeignKeyConstraint(['step_run_id'], ['runbook_step_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('approval_rounds', schema=None) as batch_op:
        batch_op.create_index('ix_approval_rounds_step_run', ['step_run_id', 'number'], unique=False)

    op.create_table('remediation_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('step_run_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('step_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('request', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('binding', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('lease_until', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('created_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('finished_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runbook_runs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['step_run_id'], ['runbook_step_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('step_run_id')
    )
    with op.batch_alter_table('remediation_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_remediation_calls_run_id'), ['run_id'], unique=False)
        batch_op.create_index('ix_remediation_calls_state', ['state', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('remediation_calls', schema=None) as batch_op:
        batch_op.drop_index('ix_remediation_calls_state')
        batch_op.drop_index(batch_op.f('ix_remediation_calls_run_id'))

    op.drop_table('remediation_calls')
    with op.batch_alter_table('approval_rounds', schema=None) as batch_op:
        batch_op.drop_index('ix_approval_rounds_step_run')

    op.drop_table('approval_rounds')
