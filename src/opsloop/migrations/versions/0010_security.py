"""security: requests already seen (replay protection across replicas)

Revision ID: 0010_security
Revises: 0009_digest
Create Date: 2026-11-24 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opsloop.models

revision = '0010_security'
down_revision = '0009_digest'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('seen_requests',
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('expires_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('digest')
    )
    with op.batch_alter_table('seen_requests', schema=None) as batch_op:
        batch_op.create_index('ix_seen_requests_expires_at', ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('seen_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_seen_requests_expires_at')
    op.drop_table('seen_requests')
