"""system actor: what opsloop does by itself is done by `system:opsloop`, like every system actor

Rows written before named it `opsloop`; the runbook engine's own step changes
must still read as automatic (the checklist, the redesign trigger's count).
The audit log keeps what it recorded: its rows are hash-chained.

Revision ID: 0014_system_actor
Revises: 0013_remediation_retries
Create Date: 2026-11-26 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0014_system_actor'
down_revision = '0013_remediation_retries'
branch_labels = None
depends_on = None

_TABLES = ("runbook_step_runs", "timeline_events")


def upgrade() -> None:
    for table in _TABLES:
        op.execute(f"UPDATE {table} SET actor = 'system:opsloop' WHERE actor = 'opsloop'")


def downgrade() -> None:
    for table in _TABLES:
        op.execute(f"UPDATE {table} SET actor = 'opsloop' WHERE actor = 'system:opsloop'")
