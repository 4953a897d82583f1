"""history: the mark of imported work items (source and id in the file they came from)

Revision ID: 0011_history
Revises: 0010_security
Create Date: 2026-11-26 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opsloop.models

revision = '0011_history'
down_revision = '0010_security'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('imported_items',
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('imported_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('source', 'external_id'),
    sa.UniqueConstraint('work_item_id')
    )


def downgrade() -> None:
    op.drop_table('imported_items')
