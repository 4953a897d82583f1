"""remediation_retries: how many retries a call had, so an old button cannot retry a later outcome

Revision ID: 0013_remediation_retries
Revises: 0013_health_plays
Create Date: 2026-11-24 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013_remediation_retries'
down_revision = '0013_health_plays'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('remediation_calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retries', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('remediation_calls', schema=None) as batch_op:
        batch_op.drop_column('retries')
