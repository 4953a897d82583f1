"""health: signal time series, score history, CSM prompts

Revision ID: 0008_health
Revises: 0006_loops
Create Date: 2026-11-22 12:00:32.274616
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import opsloop.models

revision = '0008_health'
down_revision = '0007_remediation'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('health_scores',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('band', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('factors', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('cause', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('health_scores', schema=None) as batch_op:
        batch_op.create_index('ix_health_scores_tenant_at', ['tenant_id', 'at', 'id'], unique=False)

    op.create_table('health_signals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('received_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'kind', 'at', name='uq_health_signals_tenant_kind_at')
    )
    op.create_table('health_prompts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('csm', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('opened_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('score_id', sa.Integer(), nullable=True),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('reasons', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('playbook', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('answered_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('answered_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('snoozed_until', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('ended_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('end_reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.ForeignKeyConstraint(['score_id'], ['health_scores.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('health_prompts', schema=None) as batch_op:
        batch_op.create_index('ix_health_prompts_tenant_opened', ['tenant_id', 'opened_at'], unique=False)
        batch_op.create_index('uq_health_prompts_current', ['tenant_id'], unique=True, sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))



def downgrade() -> None:
    with op.batch_alter_table('health_prompts', schema=None) as batch_op:
        batch_op.drop_index('uq_health_prompts_current', sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))
        batch_op.drop_index('ix_health_prompts_tenant_opened')

    op.drop_table('health_prompts')
    op.drop_table('health_signals')
    with op.batch_alter_table('health_scores', schema=None) as batch_op:
        batch_op.drop_index('ix_health_scores_tenant_at')

    op.drop_table('health_scores')
