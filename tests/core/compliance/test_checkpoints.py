"""Signed checkpoints, kept outside the database, catch a cut tail and a rewritten chain."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text
from sqlmodel import select

from opsloop.compliance import checkpoints
from opsloop.compliance.checkpoints import Checkpoints
from opsloop.compliance.files import WriteRefused, write_once
from opsloop.compliance.models import AuditCheckpoint
from opsloop.compliance.signing import Signer, Verifier, generate
from opsloop.compliance.verify import verify
from opsloop.db import Database
from opsloop.errors import ConfigError, InvalidInput
from opsloop.models import OutboxMessage
from opsloop.policy import Policy
from opsloop.policy_loader import load_policy
from tests.core.compliance.chain import append, cut_tail, rewrite_from
from tests.support import FakeClock, at_once


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Signer, Verifier]:
    private, public = generate(tmp_path / "keys")
    return Signer.load(private), Verifier.load(public)


def policy_with(tmp_path: Path, audit: str) -> Policy:
    path = tmp_path / "opsloop.yml"
    path.write_text(f"channels: {{ops: C0OPS}}\naudit: {audit}\n")
    return load_policy(path)


@pytest.fixture
def taker(db: Database, clock: FakeClock, tmp_path: Path, keys: tuple[Signer, Verifier]) -> Iterator[Checkpoints]:
    yield Checkpoints(db, policy_with(tmp_path, "{checkpoint_every: 1h, checkpoint_to: copies}"), clock, keys[0])


def deliver(db: Database) -> list[Path]:
    """What the outbox's file transport does with queued copies (bot.senders.file)."""
    with db.transaction() as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.transport == "file")).all()
    return [write_once(Path(m.target), m.payload["name"], m.payload["content"].encode()) for m in rows]


def anchors_in(directory: Path, verifier: Verifier) -> checkpoints.Reading:
    return checkpoints.read_directory(directory, [verifier])


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path: Path) -> None:
    private, public = generate(tmp_path / "k")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert Signer.load(private).key_id == Verifier.load(public).key_id
    with pytest.raises(InvalidInput, match="exists already"):
        generate(tmp_path / "k")


def test_a_key_that_cannot_sign_is_refused_naming_the_variable(tmp_path: Path) -> None:
    garbage, other = tmp_path / "garbage.pem", tmp_path / "ec.pem"
    garbage.write_text("not a key")
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ConfigError, match=r"OPSLOOP_AUDIT_SIGNING_KEY: .*garbage.pem: cannot use it: not a PEM"):
        Signer.load(garbage)
    with pytest.raises(ConfigError, match="not an Ed25519 key"):
        Signer.load(other)
    with pytest.raises(ConfigError, match="cannot read"):
        Signer.load(tmp_path / "absent.pem")


def test_a_checkpoint_signs_the_head_and_its_copy_goes_to_the_file_transport(
        db: Database, clock: FakeClock, taker: Checkpoints, keys: tuple[Signer, Verifier], tmp_path: Path) -> None:
    append(db, clock, 3)
    checkpoint = taker.take()
    assert (checkpoint.seq, checkpoint.trigger) == (3, "manual")
    [copy] = deliver(db)
    assert copy.parent == (tmp_path / "copies").resolve()
    document = json.loads(copy.read_text())
    assert document["statement"]["seq"] == 3 and document["statement"]["key"] == keys[1].key_id
    reading = anchors_in(copy.parent, keys[1])
    assert reading.problems == [] and [(a.seq, a.hash) for a in reading.anchors] == [(3, checkpoint.hash)]
    with db.snapshot() as session:
        result = verify(session, anchors=reading.anchors)
    assert result.ok and result.newest_anchor is not None and result.newest_anchor.seq == 3


def test_a_cut_tail_with_the_head_fixed_up_contradicts_the_checkpoint(
        db: Database, clock: FakeClock, taker: Checkpoints, keys: tuple[Signer, Verifier]) -> None:
    append(db, clock, 5)
    taker.take()
    [copy] = deliver(db)
    cut_tail(db, 3)
    with db.snapshot() as session:
        result = verify(session, anchors=anchors_in(copy.parent, keys[1]).anchors)
    assert not result.ok and result.bad_seq == 5
    assert result.problem == (f"checkpoint {copy.name} (signed 2026-11-23 09:00:05Z) records event 5, but the "
                              "chain ends at event 3: events were deleted from its tail")


def test_an_edit_with_every_later_hash_recomputed_contradicts_the_first_checkpoint_after_it(
        db: Database, clock: FakeClock, taker: Checkpoints, keys: tuple[Signer, Verifier]) -> None:
    append(db, clock, 2)
    taker.take()  # covers event 2: before the edit, still true
    append(db, clock, 2, start=2)
    taker.take()  # covers event 4: the first the rewrite contradicts
    append(db, clock, 2, start=4)
    taker.take()
    rewrite_from(db, 3, {"state": "forged"})
    copies = sorted(deliver(db))
    with db.snapshot() as session:
        result = verify(session, anchors=anchors_in(copies[0].parent, keys[1]).anchors)
    assert [p.seq for p in result.problems] == [4]
    assert result.problem is not None and result.problem.startswith(f"checkpoint {copies[1].name} (signed ")
    assert "records event 4 with hash" in result.problem
    assert result.problem.endswith("the chain was rewritten at or before event 4")


def test_a_copy_that_was_edited_or_signed_by_another_key_is_reported(
        db: Database, clock: FakeClock, taker: Checkpoints, keys: tuple[Signer, Verifier], tmp_path: Path) -> None:
    append(db, clock, 2)
    taker.take()
    [copy] = deliver(db)
    document = json.loads(copy.read_text())
    document["statement"]["seq"] = 1
    (copy.parent / "edited.json").write_text(json.dumps(document))
    (copy.parent / "junk.json").write_bytes(b"\xff\xfe not json")
    other = Signer.load(generate(tmp_path / "other")[0])
    stranger = Checkpoints(db, taker.policy, clock, other)
    write_once(copy.parent, "stranger.json", checkpoints.file_text(stranger.take(queue=False)).encode())
    reading = anchors_in(copy.parent, keys[1])
    assert len(reading.anchors) == 1
    assert reading.problems == [
        f"checkpoint edited.json: the signature does not match the public key {keys[1].key_id[:16]}…: "
        "the checkpoint was altered",
        "checkpoint junk.json: not a JSON document",
        f"checkpoint stranger.json: signed by key {other.key_id[:16]}…, which is not among the public keys given",
    ]
    assert len(checkpoints.read_directory(copy.parent, [keys[1], other.public]).anchors) == 2  # a rotated key


def test_copies_are_written_once_and_never_replaced(tmp_path: Path) -> None:
    assert write_once(tmp_path, "a.json", b"one").read_bytes() == b"one"
    assert write_once(tmp_path, "a.json", b"one").name == "a.json"  # a retried delivery
    with pytest.raises(WriteRefused, match="never overwritten"):
        write_once(tmp_path, "a.json", b"two")
    with pytest.raises(WriteRefused, match="refusing the file name"):
        write_once(tmp_path, "../escape.json", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_the_periodic_checkpoint_is_taken_once_per_period(db: Database, clock: FakeClock, taker: Checkpoints) -> None:
    append(db, clock, 1)
    assert taker.run_due() is True
    assert taker.run_due() is False
    clock.advance(minutes=59, seconds=54)  # 09:59:55, still the same hour
    assert taker.run_due() is False
    clock.advance(seconds=5)
    assert taker.run_due() is True
    with db.transaction() as session:
        rows = session.exec(select(AuditCheckpoint)).all()
    assert [r.trigger for r in rows] == ["periodic", "periodic"]
    assert len(deliver(db)) == 2


def test_without_a_key_nothing_is_taken_and_asking_says_why(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    unkeyed = Checkpoints(db, policy_with(tmp_path, "{checkpoint_every: 1h}"), clock, None)
    assert unkeyed.run_due() is False
    with pytest.raises(InvalidInput, match="set OPSLOOP_AUDIT_SIGNING_KEY"):
        unkeyed.take()


@pytest.mark.parametrize(("audit", "reason"), [
    ("{checkpoint_every: 30s}", "at most once a minute"),
    ("{checkpoint_to: 'http://bucket.example/x'}", "must be https://"),
    ("{checkpoint_to: 'env:lower'}", "write env:NAME"),
    ("{checkpoint_at: 1h}", "unknown key"),
])
def test_the_audit_section_is_validated(tmp_path: Path, audit: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        policy_with(tmp_path, audit)


def test_an_https_destination_uses_the_webhook_transport(
        db: Database, clock: FakeClock, tmp_path: Path, keys: tuple[Signer, Verifier]) -> None:
    worm = Checkpoints(db, policy_with(tmp_path, "{checkpoint_to: 'https://worm.example/opsloop'}"), clock, keys[0])
    checkpoint = worm.take()
    with db.transaction() as session:
        [message] = session.exec(select(OutboxMessage)).all()
    assert (message.transport, message.target) == ("webhook", "https://worm.example/opsloop")
    assert message.payload == {"json": checkpoints.document(checkpoint)}


@pytest.mark.postgres
def test_two_replicas_take_each_periodic_checkpoint_once(postgres_url: str, tmp_path: Path,
                                                         keys: tuple[Signer, Verifier]) -> None:
    clock = FakeClock()
    policy = policy_with(tmp_path, "{checkpoint_every: 1h, checkpoint_to: copies}")
    databases = [Database.from_url(postgres_url) for _ in range(2)]
    replicas = [Checkpoints(db, policy, clock, keys[0]) for db in databases]
    try:
        for hour in range(3):
            results = at_once([replica.run_due for replica in replicas])
            assert sorted(results) == [False, True], f"hour {hour}: {results}"
            clock.advance(hours=1)
        with databases[0].transaction() as session:
            assert len(session.exec(select(AuditCheckpoint)).all()) == 3
            assert len(session.exec(select(OutboxMessage)).all()) == 3
    finally:
        for db in databases:
            db.dispose()


def test_the_stored_copies_are_checked_too(db: Database, clock: FakeClock, taker: Checkpoints,
                                           keys: tuple[Signer, Verifier]) -> None:
    append(db, clock, 3)
    taker.take()
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_checkpoints SET signature = 'AAAA'"))
    with db.snapshot() as session:
        reading = checkpoints.read_stored(session, [keys[1]])
    assert reading.anchors == [] and reading.problems == [
        f"checkpoint #1 in the database: the signature does not match the public key {keys[1].key_id[:16]}…: "
        "the checkpoint was altered"]
