"""reviews: post-incident reviews (owner, due date, draft -> in review -> published, hash), their versions,
items' themes and recurrences

Revision ID: 0025_reviews
Revises: 0024_followups
Create Date: 2026-11-26 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import opsloop.models

revision = '0025_reviews'
down_revision = '0024_followups'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('drafted_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('drafted_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('due_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('reminders', sa.Integer(), nullable=False),
    sa.Column('submitted_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('published_at', opsloop.models.UTCDateTime(), nullable=True),
    sa.Column('published_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('work_item_id')
    )
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.create_index('ix_reviews_state_due', ['state', 'due_at'], unique=False)
    op.create_table('review_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('review_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('saved_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('saved_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('content', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['review_id'], ['reviews.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('review_id', 'version', name='uq_review_versions_review_version')
    )
    op.create_table('item_themes',
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('theme', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('work_item_id')
    )
    with op.batch_alter_table('item_themes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_item_themes_theme'), ['theme'], unique=False)
    op.create_table('recurrences',
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('theme', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('followup_id', sa.Integer(), nullable=False),
    sa.Column('closed_at', opsloop.models.UTCDateTime(), nullable=False),
    sa.Column('at', opsloop.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['followup_id'], ['followups.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('work_item_id')
    )
    with op.batch_alter_table('recurrences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recurrences_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('recurrences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recurrences_at'))
    op.drop_table('recurrences')
    with op.batch_alter_table('item_themes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_item_themes_theme'))
    op.drop_table('item_themes')
    op.drop_table('review_versions')
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_index('ix_reviews_state_due')
    op.drop_table('reviews')
