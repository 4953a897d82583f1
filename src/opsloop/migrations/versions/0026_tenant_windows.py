"""tenant_windows: an account's own maintenance window; a rollout target waiting for it

Revision ID: 0026_tenant_windows
Revises: 0025_reviews
Create Date: 2026-11-26 16:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opsloop.models

revision = '0026_tenant_windows'
down_revision = '0025_reviews'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('window', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    with op.batch_alter_table('rollout_targets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('not_before', opsloop.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('waits_for', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('rollout_targets', schema=None) as batch_op:
        batch_op.drop_column('waits_for')
        batch_op.drop_column('not_before')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('window')
