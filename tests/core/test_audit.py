"""The audit log is a hash chain: any edit, deletion or reordering is found by verify."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, text
from sqlmodel import col, select

from opsloop import audit
from opsloop.db import Database
from opsloop.models import AuditEvent, AuditHead
from tests.support import FakeClock


def append(db: Database, clock: FakeClock, n: int) -> None:
    for i in range(n):
        with db.transaction() as session:
            audit.record(session, at=clock.advance(seconds=1), actor=f"U{i}", action="thing.done",
                         subject=f"INC-{i}", before={"state": "a"}, after={"state": "b", "n": i})


def verdict(db: Database) -> audit.Verdict:
    with db.transaction() as session:
        return audit.verify(session)


def test_an_intact_chain_verifies(db: Database, clock: FakeClock) -> None:
    assert verdict(db).ok and verdict(db).checked == 0
    append(db, clock, 5)
    result = verdict(db)
    assert result.ok and result.checked == 5


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE audit_events SET actor = 'U_EVIL' WHERE seq = 3",
        "UPDATE audit_events SET subject = 'INC-99' WHERE seq = 3",
        "UPDATE audit_events SET at = at + INTERVAL '1 second' WHERE seq = 3",
    ],
)
def test_editing_any_field_of_a_row_is_found_and_named(db: Database, clock: FakeClock, edit: str) -> None:
    append(db, clock, 5)
    if db.is_sqlite and "INTERVAL" in edit:
        edit = "UPDATE audit_events SET at = datetime(at, '+1 second') WHERE seq = 3"
    with db.engine.begin() as connection:
        connection.execute(text(edit))
    result = verdict(db)
    assert not result.ok
    assert result.bad_seq == 3
    assert "event 3" in (result.problem or "")


def test_editing_the_json_after_state_is_found(db: Database, clock: FakeClock) -> None:
    append(db, clock, 3)
    with db.transaction() as session:
        event = session.get(AuditEvent, 2)
        assert event is not None
        event.after = {"state": "b", "n": 999}
        session.add(event)
    assert verdict(db).bad_seq == 2


def test_deleting_a_row_in_the_middle_is_found(db: Database, clock: FakeClock) -> None:
    append(db, clock, 5)
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    result = verdict(db)
    assert not result.ok and result.problem == "event 2 missing before event 3"


def test_deleting_the_newest_rows_is_found_through_the_head(db: Database, clock: FakeClock) -> None:
    append(db, clock, 5)
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq >= 4"))
    result = verdict(db)
    assert not result.ok
    assert "ends at event 3 but its head records event 5" in (result.problem or "")


def test_reordering_rows_is_found(db: Database, clock: FakeClock) -> None:
    append(db, clock, 5)
    with db.engine.begin() as connection:  # swap events 2 and 3
        connection.execute(text("UPDATE audit_events SET seq = 100 WHERE seq = 2"))
        connection.execute(text("UPDATE audit_events SET seq = 2 WHERE seq = 3"))
        connection.execute(text("UPDATE audit_events SET seq = 3 WHERE seq = 100"))
    result = verdict(db)
    assert not result.ok and result.bad_seq == 2


def test_an_event_rolled_back_with_its_change_leaves_no_trace(db: Database, clock: FakeClock) -> None:
    append(db, clock, 2)
    with pytest.raises(RuntimeError), db.transaction() as session:
        audit.record(session, at=clock.now(), actor="U1", action="x", subject="y")
        raise RuntimeError("the change failed")
    append(db, clock, 1)
    result = verdict(db)
    assert result.ok and result.checked == 3


def test_export_writes_json_lines_that_rehash(db: Database, clock: FakeClock) -> None:
    append(db, clock, 3)
    with db.transaction() as session:
        lines = list(audit.export(session))
        since = list(audit.export(session, since=clock.now() - timedelta(seconds=1)))
    rows = [json.loads(line) for line in lines]
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[1]["prev_hash"] == rows[0]["hash"]
    assert [json.loads(line)["seq"] for line in since] == [2, 3]


@pytest.mark.postgres
def test_concurrent_writers_keep_the_chain_linear(postgres_url: str, clock: FakeClock) -> None:
    db_url = postgres_url
    writers, per_writer = 8, 25
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        db = Database.from_url(db_url)
        try:
            barrier.wait()
            for i in range(per_writer):
                with db.transaction() as session:
                    audit.record(session, at=clock.now(), actor=f"U{n}", action="race", subject=f"{n}:{i}")
        except BaseException as error:
            errors.append(error)
        finally:
            db.dispose()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db = Database.from_url(db_url)
    with db.transaction() as session:
        seqs = list(session.exec(select(AuditEvent.seq).order_by(col(AuditEvent.seq))))
        result = audit.verify(session)
    db.dispose()
    assert seqs == list(range(1, writers * per_writer + 1))
    assert result.ok and result.checked == writers * per_writer


def test_record_many_links_exactly_as_record_does_one_by_one(db_url: str, clock: FakeClock) -> None:
    """A bulk import appends with one lock and one insert; the links are the same as one `record` each."""
    entries = [audit.Entry(at=clock.now() + timedelta(seconds=i), actor="system:cli", action="history.imported",
                           subject=f"INC-{i}", after={"id": f"x{i}", "at": clock.now()}) for i in range(1, 4)]
    one_by_one = Database.from_url(db_url)
    with one_by_one.transaction() as session:
        audit.record(session, at=clock.now(), actor="U1", action="first", subject="s")
        for e in entries:
            audit.record(session, at=e.at, actor=e.actor, action=e.action, subject=e.subject, after=e.after)
        expected = [(e.seq, e.hash) for e in session.exec(select(AuditEvent).order_by(col(AuditEvent.seq)))]
        session.rollback()
    with one_by_one.transaction() as session:
        audit.record(session, at=clock.now(), actor="U1", action="first", subject="s")
        assert audit.record_many(session, iter(entries)) == 3
        assert audit.record_many(session, []) == 0
    with one_by_one.transaction() as session:
        assert [(e.seq, e.hash) for e in session.exec(select(AuditEvent).order_by(col(AuditEvent.seq)))] == expected
        assert audit.verify(session).ok
    one_by_one.dispose()


def test_the_head_row_is_written_once_per_transaction(db: Database, clock: FakeClock) -> None:
    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        with db.transaction() as session:
            for i in range(3):
                audit.record(session, at=clock.now(), actor="U1", action="x", subject=f"s{i}")
            assert session.get(AuditHead, 1, with_for_update=True).seq == 3  # as a checkpoint reads it
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert len([s for s in seen if s.startswith("UPDATE audit_head")]) == 1
    assert verdict(db).ok and verdict(db).checked == 3


def actions(db: Database) -> list[str]:
    with db.transaction() as session:
        return list(session.exec(select(AuditEvent.action).order_by(col(AuditEvent.seq))))


def test_a_savepoint_rolled_back_after_appends_keeps_the_chain_linear(db: Database, clock: FakeClock) -> None:
    """The sweeper gives each timer a savepoint; one may begin after appends the head's row lacks."""
    with db.transaction() as session:
        audit.record(session, at=clock.now(), actor="U1", action="before", subject="s")
        with pytest.raises(RuntimeError), session.begin_nested():
            audit.record(session, at=clock.now(), actor="U1", action="undone", subject="s")
            raise RuntimeError("the handler failed")
        audit.record(session, at=clock.now(), actor="U1", action="after", subject="s")
    assert actions(db) == ["before", "after"]
    result = verdict(db)
    assert result.ok and result.checked == 2


def test_savepoints_released_and_rolled_back_inside_keep_the_chain_linear(db: Database, clock: FakeClock) -> None:
    with db.transaction() as session:
        audit.record(session, at=clock.now(), actor="U1", action="before", subject="s")
        with session.begin_nested():
            audit.record(session, at=clock.now(), actor="U1", action="inside", subject="s")
            with pytest.raises(RuntimeError), session.begin_nested():
                audit.record(session, at=clock.now(), actor="U1", action="undone", subject="s")
                raise RuntimeError("the inner handler failed")
            audit.record(session, at=clock.now(), actor="U1", action="inside again", subject="s")
        audit.record(session, at=clock.now(), actor="U1", action="after", subject="s")
    assert actions(db) == ["before", "inside", "inside again", "after"]
    result = verdict(db)
    assert result.ok and result.checked == 4
