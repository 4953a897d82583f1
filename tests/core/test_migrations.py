"""The shipped migrations build exactly the tables the models describe."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlmodel import SQLModel

import opsloop.schema  # noqa: F401
from opsloop.db import Database


def test_migrations_have_one_head(db: Database) -> None:
    heads = ScriptDirectory.from_config(db.alembic_config()).get_heads()
    assert len(heads) == 1, f"migrations branch: heads {heads}; chain them with down_revision"


def test_migrated_schema_matches_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_upgrade_is_idempotent_and_current(db: Database) -> None:
    db.upgrade()
    db.upgrade()
    assert db.migrations_current()


def test_rows_opsloop_wrote_as_opsloop_are_written_by_system_opsloop_after_the_upgrade(db: Database) -> None:
    """0014: the engine's own step changes must still read as automatic (checklist, redesign count)."""
    config = db.alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0013_remediation_retries")
        connection.execute(text(
            "INSERT INTO work_items (id, ref, kind, number, title, severity, state, created_by, labels, "
            "created_at, updated_at) VALUES (1, 'INC-1', 'incident', 1, 't', 'sev3', 'triggered', 'U1', '{}', "
            "'2026-11-23 09:00:00', '2026-11-23 09:00:00')"))
        for actor in ("opsloop", "U1"):
            connection.execute(text("INSERT INTO timeline_events (work_item_id, at, actor, action, text) "
                                    f"VALUES (1, '2026-11-23 09:00:00', '{actor}', 'runbook', 'x')"))
    db.upgrade()
    with db.engine.connect() as connection:
        actors = connection.execute(text("SELECT actor FROM timeline_events ORDER BY id")).scalars().all()
    assert actors == ["system:opsloop", "U1"]
