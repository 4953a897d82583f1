"""Upgrading a database whose chain hashed personal data directly moves it apart and re-links the chain."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import text

from opsloop.compliance import export
from opsloop.db import Database
from tests.core.compliance.chain import verdict


@pytest.fixture
def before_sealing(db: Database) -> Iterator[Database]:
    """The database as it was before revision 0017; back at head afterwards, whatever happened."""
    config = db.alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0016_heartbeats")
    try:
        yield db
    finally:
        db.upgrade()


def legacy_chain(db: Database, tampered: bool = False) -> str:
    """Three events as opsloop wrote them before personal data was sealed; returns the head's hash."""
    start = datetime(2026, 11, 1, 9, tzinfo=UTC)
    events = [("opsloop", "account.created", "account:acme", None, {"id": "acme", "contact_email": "ops@acme.example"}),
              ("U0RESP1", "incident.created", "INC-1", None, {"title": "Exports fail for ops@acme.example",
                                                            "state": "triggered"}),
              ("U0RESP1", "incident.resolve", "INC-1", {"state": "triggered"}, {"state": "resolved"})]
    previous = "0" * 64
    with db.engine.begin() as connection:
        for seq, (actor, action, subject, before, after) in enumerate(events, start=1):
            when = start + timedelta(minutes=seq)
            body = {"seq": seq, "at": when.isoformat(timespec="microseconds"), "actor": actor, "action": action,
                    "subject": subject, "before": before, "after": after, "prev_hash": previous}
            digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                               ensure_ascii=False).encode()).hexdigest()
            cast = "CAST(:{} AS jsonb)" if not db.is_sqlite else ":{}"
            connection.execute(text(
                'INSERT INTO audit_events (seq, at, actor, action, subject, "before", "after", prev_hash, hash) '
                f"VALUES (:seq, :at, :actor, :action, :subject, {cast.format('before')}, {cast.format('after')}, "
                ":prev, :hash)"),
                {"seq": seq, "at": when.replace(tzinfo=None) if not db.is_sqlite else
                 when.strftime("%Y-%m-%d %H:%M:%S.%f"), "actor": actor, "action": action, "subject": subject,
                 "before": json.dumps(before), "after": json.dumps(after), "prev": previous, "hash": digest})
            previous = digest
        connection.execute(text("UPDATE audit_head SET seq = 3, hash = :hash WHERE id = 1"), {"hash": previous})
        if tampered:
            connection.execute(text("UPDATE audit_events SET actor = 'U_EVIL' WHERE seq = 3"))
    return previous


def test_a_legacy_chain_is_resealed_and_still_verifies(before_sealing: Database) -> None:
    db = before_sealing
    old_head = legacy_chain(db)
    db.upgrade()
    result = verdict(db)
    assert result.ok and result.checked == 4
    with db.snapshot() as session:
        rows = [json.loads(line) for line in export.lines(session)]
    assert [r.get("personal") for r in rows[:3]] == [
        ["/after/contact_email"], ["/after/title"], None]
    assert rows[1]["personal_data"]["/after/title"]["value"] == "Exports fail for ops@acme.example"
    with db.engine.connect() as connection:
        stored = " ".join(str(v) for v in connection.execute(text('SELECT "after" FROM audit_events')).scalars())
    assert "acme.example" not in stored
    assert rows[3]["action"] == "audit.resealed"
    assert rows[3]["after"] == {"events": 3, "from_seq": 1, "old_head": {"seq": 3, "hash": old_head}}


def test_a_legacy_chain_that_does_not_verify_is_left_alone(before_sealing: Database) -> None:
    db = before_sealing
    legacy_chain(db, tampered=True)
    db.upgrade()
    result = verdict(db)
    assert not result.ok and result.problem is not None and result.problem.startswith("event 3 (incident.resolve")
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit_personal")).scalar() == 0
