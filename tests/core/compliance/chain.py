"""Helpers for compliance tests: write a chain, and tamper with it as someone with database access would."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from opsloop import audit
from opsloop.compliance import reader
from opsloop.compliance.verify import Verdict, verify
from opsloop.db import Database
from tests.support import FakeClock


def append(db: Database, clock: FakeClock, n: int, *, start: int = 0) -> None:
    """n events, each with a personal value (a title) and plain ones."""
    for i in range(start, start + n):
        with db.transaction() as session:
            audit.record(session, at=clock.advance(seconds=1), actor=f"U{i}", action="thing.done",
                         subject=f"INC-{i}", before={"state": "a"},
                         after={"state": "b", "n": i, "title": f"Checkout down for jane{i}@acme.example"})


def verdict(db: Database) -> Verdict:
    with db.snapshot() as session:
        return verify(session)


def rewrite_from(db: Database, seq: int, edit: dict[str, Any]) -> None:
    """Change event `seq`'s `after` and recompute its hash, every later hash and the head:
    the chain agrees with itself again (only a checkpoint can tell)."""
    with db.snapshot() as session:
        links = [link for batch in reader.events(session, first=seq) for link in batch]
    prev_hash = None
    with db.engine.begin() as connection:
        for link in links:
            assert isinstance(link, reader.Link)
            after = {**(link.after or {}), **edit} if link.seq == seq else link.after
            fixed = reader.Link(link.seq, link.at, link.actor, link.action, link.subject, link.before, after,
                                link.personal, prev_hash or link.prev_hash, "")
            new_hash = fixed.digest()
            connection.execute(text('UPDATE audit_events SET "after" = :after, prev_hash = :prev, hash = :hash '
                                    "WHERE seq = :seq"), {"after": json.dumps(after), "prev": fixed.prev_hash,
                                                         "hash": new_hash, "seq": link.seq})
            prev_hash = new_hash
        connection.execute(text("UPDATE audit_head SET hash = :hash WHERE id = 1"), {"hash": prev_hash})


def cut_tail(db: Database, keep: int) -> None:
    """Delete every event after `keep` and make the head point at `keep`."""
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq > :keep"), {"keep": keep})
        connection.execute(text("UPDATE audit_head SET seq = :keep, hash = (SELECT hash FROM audit_events "
                                "WHERE seq = :keep) WHERE id = 1"), {"keep": keep})


def restore_schema(db_url: str) -> None:
    """Put back the column types `corrupt` changed (the PostgreSQL leg shares one schema)."""
    if db_url.startswith("postgresql"):
        db = Database.from_url(db_url)
        with db.engine.begin() as connection:
            types = dict(connection.execute(text(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'audit_events' AND table_schema = current_schema()")).all())
            connection.execute(text("TRUNCATE audit_events, audit_personal"))
            if types["after"] != "jsonb":
                connection.execute(text('ALTER TABLE audit_events ALTER COLUMN "after" TYPE jsonb '
                                        'USING "after"::jsonb'))
            if types["actor"] != "character varying":
                connection.execute(text("ALTER TABLE audit_events ALTER COLUMN actor TYPE varchar(64) "
                                        "USING convert_from(actor, 'UTF8')"))
        db.dispose()


def corrupt(db: Database, case: str, seq: int) -> None:
    """Store what the ORM could not read back, each as one attacker's SQL on that backend."""
    sqlite = db.is_sqlite
    statements = {
        "invalid JSON": [] if sqlite else ['ALTER TABLE audit_events ALTER COLUMN "after" TYPE text'],
        "bad date": [],
        "non-UTF-8": [] if sqlite else ["ALTER TABLE audit_events ALTER COLUMN actor TYPE bytea "
                                        "USING convert_to(actor, 'UTF8')"],
    }[case]
    statements.append({
        "invalid JSON": """UPDATE audit_events SET "after" = '{"state": "b", "n": ' WHERE seq = :seq""",
        "bad date": ("UPDATE audit_events SET at = 'last tuesday' WHERE seq = :seq" if sqlite
                     else "UPDATE audit_events SET at = 'infinity' WHERE seq = :seq"),
        "non-UTF-8": ("UPDATE audit_events SET actor = CAST(X'FF41' AS TEXT) WHERE seq = :seq" if sqlite
                      else "UPDATE audit_events SET actor = '\\xff41'::bytea WHERE seq = :seq"),
    }[case])
    with db.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement), {"seq": seq})
