"""foundation: work items, accounts, timeline, audit chain, outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-22 11:19:47.788330
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import opsloop.models

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('tier', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('arr', sa.Integer(), nullable=False),
    sa.Column('renewal_date', sa.Date(), nullable=True),
    sa.Column('csm', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('sales_owner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('support_channel', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('contact_email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('updated_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accounts_csm'), ['csm'], unique=False)
        batch_op.create_index(batch_op.f('ix_accounts_tier'), ['tier'], unique=False)

    op.create_table('audit_events',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('before', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('after', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('prev_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_subject'), ['subject'], unique=False)

    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    # the chain starts from a genesis link; writers lock this row to append
    op.bulk_insert(
        sa.table("audit_head", sa.column("id"), sa.column("seq"), sa.column("hash")),
        [{"id": 1, "seq": 0, "hash": "0" * 64}],
    )
    op.create_table('counters',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.bulk_insert(
        sa.table("counters", sa.column("name"), sa.column("value")),
        [{"name": kind, "value": 0} for kind in ("incident", "escalation", "exception")],
    )
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('transport', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('target', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('lane', sqlmodel.sql.sqltypes.AutoString(length=280), nullable=False),
    sa.Column('thread_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('update_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('leased_until', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('sent_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('external_target', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_status_lane_id', ['status', 'lane', 'id'], unique=False)

    op.create_table('work_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ref', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('severity', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('comms_owner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('acknowledged_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('mitigated_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('resolved_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('closed_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('decided_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('expires_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('expired_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kind', 'number', name='uq_work_items_kind_number'),
    sa.UniqueConstraint('ref')
    )
    with op.batch_alter_table('work_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_work_items_created_at'), ['created_at'], unique=False)
        batch_op.create_index('ix_work_items_kind_state', ['kind', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_work_items_resolved_at'), ['resolved_at'], unique=False)

    op.create_table('outbox_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['outbox.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outbox_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_attempts_message_id'), ['message_id'], unique=False)

    op.create_table('timeline_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('timeline_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_timeline_events_work_item_id'), ['work_item_id'], unique=False)

    op.create_table('work_item_tenants',
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('work_item_id', 'tenant_id')
    )
    with op.batch_alter_table('work_item_tenants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_work_item_tenants_tenant_id'), ['tenant_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('work_item_tenants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_work_item_tenants_tenant_id'))

    op.drop_table('work_item_tenants')
    with op.batch_alter_table('timeline_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_timeline_events_work_item_id'))

    op.drop_table('timeline_events')
    with op.batch_alter_table('outbox_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_attempts_message_id'))

    op.drop_table('outbox_attempts')
    with op.batch_alter_table('work_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_work_items_resolved_at'))
        batch_op.drop_index('ix_work_items_kind_state')
        batch_op.drop_index(batch_op.f('ix_work_items_created_at'))

    op.drop_table('work_items')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_status_lane_id')

    op.drop_table('outbox')
    op.drop_table('counters')
    op.drop_table('audit_head')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_subject'))
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))

    op.drop_table('audit_events')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accounts_tier'))
        batch_op.drop_index(batch_op.f('ix_accounts_csm'))

    op.drop_table('accounts')
