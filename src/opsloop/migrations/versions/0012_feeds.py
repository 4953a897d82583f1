"""feeds: each on-call team's loaded iCal feed (content, hash, how its people map to Slack)

Revision ID: 0012_feeds
Revises: 0011_history
Create Date: 2026-11-26 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import opsloop.models

revision = '0012_feeds'
down_revision = '0011_history'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('oncall_feeds',
    sa.Column('team', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('people', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('loaded_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('loaded_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('team')
    )


def downgrade() -> None:
    op.drop_table('oncall_feeds')
