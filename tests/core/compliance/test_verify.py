"""Verification walks the raw chain and reports every defect, including in the sealed personal data."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlmodel import select

from opsloop import audit
from opsloop.compliance.chain import canonical
from opsloop.compliance.models import AuditPersonal
from opsloop.compliance.personal import commit, is_commitment, matches, seal
from opsloop.db import Database
from opsloop.models import AuditEvent
from tests.core.compliance.chain import append, corrupt, cut_tail, restore_schema, rewrite_from, verdict
from tests.support import FakeClock


@pytest.fixture
def schema_restored(db_url: str) -> Iterator[None]:
    yield
    restore_schema(db_url)


def test_personal_values_are_sealed_apart_and_the_chain_hashes_commitments(db: Database, clock: FakeClock) -> None:
    append(db, clock, 2)
    with db.transaction() as session:
        event = session.get(AuditEvent, 2)
        sides = session.exec(select(AuditPersonal).where(AuditPersonal.seq == 2)).all()
    assert event is not None and event.personal == ["/after/title"]
    assert is_commitment(event.after and event.after["title"])
    assert event.after is not None and (event.after["state"], event.after["n"]) == ("b", 1)  # not personal
    [side] = sides
    assert (side.pointer, json.loads(side.value or "")) == ("/after/title", "Checkout down for jane1@acme.example")
    assert matches(event.after["title"], side.salt or "", side.value or "")
    with db.engine.connect() as connection:
        stored = connection.execute(text("SELECT CAST(\"after\" AS TEXT) FROM audit_events")).scalars().all()
    assert not any("acme.example" in row for row in stored)
    assert verdict(db).ok and verdict(db).checked == 2


def test_commitments_are_salted_and_nested_personal_keys_are_found() -> None:
    sealed = seal(None, {"labels": {"a": "b"}, "steps": [{"note": "call jane"}, {"note": ""}], "n": None})
    assert sealed.pointers == ["/after/labels", "/after/steps/0/note"]
    assert sealed.after is not None and sealed.after["steps"][1] == {"note": ""} and sealed.after["n"] is None
    again = seal(None, {"labels": {"a": "b"}})
    assert again.after != sealed.after["labels"]  # a fresh salt each time: equal values do not link
    salt = "00" * 32
    assert commit(salt, '"x"') != commit("11" * 32, '"x"')
    assert not matches(commit(salt, '"x"'), salt, '"y"')


def test_events_without_personal_data_hash_as_before() -> None:
    from datetime import UTC, datetime
    at = datetime(2026, 1, 1, tzinfo=UTC)
    args = {"seq": 1, "at": at, "actor": "U1", "action": "a", "subject": "s", "before": None, "after": {"x": 1},
            "prev_hash": "0" * 64}
    assert b'"personal"' not in canonical(**args, personal=None)
    assert canonical(**args, personal=None) == canonical(**args, personal=[])
    assert b'"personal":["/after/title"]' in canonical(**args, personal=["/after/title"])


@pytest.mark.parametrize("case", ["invalid JSON", "bad date", "non-UTF-8"])
def test_what_the_orm_could_not_read_is_a_named_bad_event(db: Database, clock: FakeClock, case: str,
                                                           schema_restored: None) -> None:
    append(db, clock, 4)
    corrupt(db, case, 2)
    result = verdict(db)
    assert not result.ok and result.bad_seq == 2
    expected = {"invalid JSON": "`after` is not valid JSON", "bad date": "`at` is not a date",
                "non-UTF-8": "`actor` is not UTF-8 text"}[case]
    assert result.problem is not None and result.problem.startswith(f"event 2 cannot be read: {expected}")
    assert [p.seq for p in result.problems] == [2]  # the walk goes on: events 3 and 4 still link
    assert result.checked == 3


def test_every_defect_is_reported_not_only_the_first(db: Database, clock: FakeClock) -> None:
    append(db, clock, 6)
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET actor = 'U_EVIL' WHERE seq = 2"))
        connection.execute(text("DELETE FROM audit_events WHERE seq = 4"))
    problems = [p.text for p in verdict(db).problems]
    assert problems == ["event 2 (thing.done INC-1) was altered: its content does not match its hash",
                        "event 4 missing before event 5"]


def test_a_rewrite_or_a_cut_tail_agrees_with_itself(db: Database, clock: FakeClock) -> None:
    """Without a checkpoint these are invisible: which is why checkpoints exist."""
    append(db, clock, 5)
    rewrite_from(db, 2, {"state": "forged"})
    assert verdict(db).ok
    cut_tail(db, 3)
    assert verdict(db).ok and verdict(db).checked == 3


@pytest.mark.parametrize(("tamper", "expected"), [
    ("UPDATE audit_personal SET value = '\"someone else\"' WHERE seq = 2",
     "event 2: the personal data at /after/title was altered: it no longer matches its commitment"),
    ("DELETE FROM audit_personal WHERE seq = 2",
     "event 2: the personal data at /after/title is missing from audit_personal (deleted, not erased)"),
    ("UPDATE audit_personal SET value = NULL, salt = NULL WHERE seq = 2",
     "event 2: the personal data at /after/title was cleared without an erasure event"),
    ("UPDATE audit_personal SET value = NULL, salt = NULL, erased_in = 3 WHERE seq = 2",
     "event 2: the personal data at /after/title was cleared in the name of event 3, which is no erasure"),
])
def test_the_sealed_personal_data_is_checked_too(db: Database, clock: FakeClock, tamper: str, expected: str) -> None:
    append(db, clock, 3)
    with db.engine.begin() as connection:
        connection.execute(text(tamper))
    result = verdict(db)
    assert not result.ok and result.problem == expected


def test_clearing_more_in_the_name_of_a_real_erasure_is_found(db: Database, clock: FakeClock) -> None:
    append(db, clock, 3)
    with db.transaction() as session:
        audit.record(session, at=clock.now(), actor="system:cli", action="privacy.erased", subject="privacy:contact",
                     after={"erased": 0, "erased_digest": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"})
    assert verdict(db).ok  # an erasure of nothing
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_personal SET value = NULL, salt = NULL, erased_in = 4 WHERE seq = 1"))
    assert verdict(db).problem == ("erasure event 4 cleared 0 value(s), but 1 are cleared in its name: personal "
                                   "data was cleared, or restored, outside an erasure")
