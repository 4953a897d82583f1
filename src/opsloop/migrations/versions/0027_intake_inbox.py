"""intake_inbox: webhooks accepted and not yet processed

Revision ID: 0027_intake_inbox
Revises: 0026_tenant_windows
Create Date: 2026-11-26 17:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opsloop.models

revision = '0027_intake_inbox'
down_revision = '0026_tenant_windows'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'intake_inbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('integration', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('dedup_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column('received_at', opsloop.models.UTCDateTime(), nullable=False),
        sa.Column('failed_at', opsloop.models.UTCDateTime(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('intake_inbox')
