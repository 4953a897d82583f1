"""incident roles: who holds scribe, liaison ... on an incident (commander and comms are its owner columns)

Revision ID: 0023_incident_roles
Revises: 0022_maintenance
Create Date: 2026-11-26 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opsloop.models

revision = '0023_incident_roles'
down_revision = '0022_maintenance'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('incident_roles',
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('user', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('assigned_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('assigned_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('work_item_id', 'role')
    )
    op.create_index(op.f('ix_incident_roles_user'), 'incident_roles', ['user'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_incident_roles_user'), table_name='incident_roles')
    op.drop_table('incident_roles')
