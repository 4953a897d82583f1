"""Requests already seen (opsloop.replays), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import select

from opsloop.db import Database
from opsloop.replays import Replays, SeenRequest, digest

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def stored(db: Database) -> set[str]:
    with db.transaction() as session:
        return set(session.exec(select(SeenRequest.digest)).all())


def test_only_the_first_sighting_counts_and_names_are_distinct() -> None:
    assert digest("1700000000", "v0=ab") != digest("1700000000", "v0=ac")
    assert digest("170000000", "0v0=ab") != digest("1700000000", "v0=ab")  # no two parts run together


def test_two_replicas_agree_on_who_saw_a_request_first(db: Database) -> None:
    one, other = Replays(db, write_behind=False), Replays(db, write_behind=False)
    key = digest("1700000000", "v0=ab")
    assert one.first_time(key, now=NOW, expires_at=LATER) is True
    assert other.first_time(key, now=NOW, expires_at=LATER) is False  # through the table
    assert one.first_time(key, now=NOW, expires_at=LATER) is False  # through its own memory
    assert other.first_time(digest("1700000001", "v0=ab"), now=NOW, expires_at=LATER) is True
    assert len(stored(db)) == 2


def test_written_behind_then_loaded_after_a_restart_and_pruned_once_expired(db: Database) -> None:
    before = Replays(db, write_behind=True)
    key = digest("1700000000", "v0=ab")
    assert before.first_time(key, now=NOW, expires_at=LATER) is True
    assert stored(db) == set()  # not yet written: memory answers
    assert before.flush(NOW) == 1 and stored(db) == {key}
    after = Replays(db, write_behind=True)
    assert after.load(NOW) == 1
    assert after.first_time(key, now=NOW, expires_at=LATER) is False
    later = Replays(db, write_behind=True)
    later.flush(LATER + timedelta(seconds=1))  # the first flush of a process also prunes
    assert stored(db) == set()
    assert later.load(LATER + timedelta(seconds=1)) == 0
