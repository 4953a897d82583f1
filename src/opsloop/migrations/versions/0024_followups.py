"""followups: ACT-n follow-ups (owner, due date, reminders, close with a note) and their counter

Revision ID: 0024_followups
Revises: 0023_incident_roles
Create Date: 2026-11-26 12:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import opsloop.models

revision = '0024_followups'
down_revision = '0023_incident_roles'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('followups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ref', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('what', sa.Text(), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('link', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('themes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('due_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('reminders', sa.Integer(), nullable=False),
    sa.Column('closed_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('closed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ref')
    )
    with op.batch_alter_table('followups', schema=None) as batch_op:
        batch_op.create_index('ix_followups_open_due', ['closed_at', 'due_at'], unique=False)
        batch_op.create_index('ix_followups_owner', ['owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_followups_work_item_id'), ['work_item_id'], unique=False)
    op.bulk_insert(sa.table("counters", sa.column("name"), sa.column("value")),
                   [{"name": "followup", "value": 0}])


def downgrade() -> None:
    op.execute("DELETE FROM counters WHERE name = 'followup'")
    with op.batch_alter_table('followups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_followups_work_item_id'))
        batch_op.drop_index('ix_followups_owner')
        batch_op.drop_index('ix_followups_open_due')
    op.drop_table('followups')
