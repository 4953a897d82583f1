"""alert context: what alerts said beyond labels (for the card), and change events

Revision ID: 0015_alert_context
Revises: 0014_system_actor
Create Date: 2026-11-27 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import opsloop.models

revision = '0015_alert_context'
down_revision = '0014_system_actor'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    for table in ("alerts", "alert_groups"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('context', JSON, nullable=False, server_default=sa.text("'{}'")))
    op.create_table('change_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('integration', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('service', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('labels', JSON, nullable=False),
    sa.Column('links', JSON, nullable=False),
    sa.Column('happened_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('received_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('change_events', schema=None) as batch_op:
        batch_op.create_index('ix_change_events_service_at', ['service', 'happened_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('change_events', schema=None) as batch_op:
        batch_op.drop_index('ix_change_events_service_at')
    op.drop_table('change_events')
    for table in ("alert_groups", "alerts"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('context')
