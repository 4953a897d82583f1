"""Signed checkpoints of the audit chain, kept apart from it (CloudTrail's digest files, for opsloop).

A checkpoint is a statement "event `seq` of the chain has hash `hash`", made at
`at` and signed with the Ed25519 key of OPSLOOP_AUDIT_SIGNING_KEY, which is not
in the database. Someone who can write the database can cut the chain's tail
and fix up the head, or edit an event and recompute every later hash: the
chain then agrees with itself, but not with a checkpoint taken before.

Checkpoints are taken every `audit.checkpoint_every` (once per period across
replicas: the period is claimed in the database), by `opsloop audit
checkpoint`, and for an evidence bundle. Each is stored in `audit_checkpoints`
and queued to the outbox for `audit.checkpoint_to`: the file transport for a
directory, the webhook transport for an https:// endpoint such as a WORM
bucket's. A copy is one JSON file:

    {"signature": "<base64 Ed25519 signature>",
     "statement": {"at": "2026-11-23T09:00:00.000000+00:00", "hash": "<hex>", "key": "<key id>",
                   "kind": "opsloop.audit.checkpoint", "seq": 42, "version": 1}}

The signed bytes are the statement's canonical JSON (sorted keys, no spaces,
ASCII), which `jq -cjS .statement FILE` reproduces.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from opsloop import audit, outbox
from opsloop.clock import Clock
from opsloop.compliance import reader
from opsloop.compliance.claims import claim
from opsloop.compliance.files import write_once
from opsloop.compliance.models import AuditCheckpoint
from opsloop.compliance.signing import Signer, Verifier
from opsloop.compliance.verify import Anchor
from opsloop.db import Database
from opsloop.errors import InvalidInput
from opsloop.models import AuditHead
from opsloop.policy import Policy
from opsloop.scheduled import safely

log = logging.getLogger(__name__)

KIND = "opsloop.audit.checkpoint"
VERSION = 1
JOB = "audit.checkpoint"
MAX_FILE = 64 * 1024
PERIODIC, MANUAL, EVIDENCE = "periodic", "manual", "evidence"


def statement(*, seq: int, hash: str, at: datetime, key_id: str) -> bytes:
    body = {"kind": KIND, "version": VERSION, "seq": seq, "hash": hash,
            "at": at.isoformat(timespec="microseconds"), "key": key_id}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def document(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    return {"statement": json.loads(checkpoint.statement), "signature": checkpoint.signature}


def file_name(checkpoint: AuditCheckpoint) -> str:
    return f"checkpoint-{checkpoint.seq:012d}-{checkpoint.at:%Y%m%dT%H%M%S.%f}Z.json"


def file_text(checkpoint: AuditCheckpoint) -> str:
    return json.dumps(document(checkpoint), sort_keys=True, indent=2) + "\n"


def write(directory: Path, checkpoint: AuditCheckpoint) -> Path:
    """Write a copy into `directory` now (the CLI's `--to DIR`)."""
    try:
        return write_once(directory, file_name(checkpoint), file_text(checkpoint).encode())
    except OSError as error:
        raise InvalidInput(f"{directory}: cannot write the checkpoint: {error.strerror}") from None


class Checkpoints:
    def __init__(self, db: Database, policy: Policy, clock: Clock, signer: Signer | None) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.signer = signer
        self.every = policy.audit.checkpoint_every
        self.destination = policy.audit.destination(policy.path_of)

    def take(self, *, trigger: str = MANUAL, queue: bool = True) -> AuditCheckpoint:
        """Sign the chain's head now; `queue` also sends the copy to `audit.checkpoint_to`."""
        signer = self._signer()
        with self.db.transaction() as session:
            checkpoint = self._make(session, signer, trigger)
            if queue:
                self._enqueue(session, checkpoint)
        return checkpoint

    def run_due(self, now: datetime | None = None) -> bool:
        """Take this period's checkpoint unless a replica took it already."""
        if self.signer is None:
            return False
        now = now or self.clock.now()
        period = str(int(now.timestamp() // self.every.total_seconds()))
        try:
            with self.db.transaction() as session:
                audit.lock_chain(session)  # claimers queue here (see opsloop.compliance.claims)
                if claim(session, JOB, period, now) is None:
                    return False
                checkpoint = self._make(session, self.signer, PERIODIC)
                self._enqueue(session, checkpoint)
        except IntegrityError:  # another replica claimed the period between our check and insert
            return False
        return True

    def run_safely(self) -> bool:
        """`run_due` for a scheduler job: errors are logged, never raised into the scheduler."""
        return safely(self.run_due, failed=False, log=log,
                      message="the audit checkpoint failed; the next period retries")

    def _signer(self) -> Signer:
        if self.signer is None:
            raise InvalidInput("no signing key: set OPSLOOP_AUDIT_SIGNING_KEY to the private key file "
                               "(make one with `opsloop audit keygen DIR`)")
        return self.signer

    def _make(self, session: Session, signer: Signer, trigger: str) -> AuditCheckpoint:
        head = session.get(AuditHead, 1, with_for_update=True)
        assert head is not None, "the migrations seed the chain's head"
        now = self.clock.now()
        signed = statement(seq=head.seq, hash=head.hash, at=now, key_id=signer.key_id)
        checkpoint = AuditCheckpoint(seq=head.seq, hash=head.hash, at=now, key_id=signer.key_id,
                                     statement=signed.decode(), trigger=trigger,
                                     signature=base64.b64encode(signer.sign(signed)).decode())
        session.add(checkpoint)
        session.flush()
        return checkpoint

    def _enqueue(self, session: Session, checkpoint: AuditCheckpoint) -> None:
        if self.destination is None:
            return
        transport, target = self.destination
        payload: dict[str, Any] = (
            {"name": file_name(checkpoint), "content": file_text(checkpoint)} if transport == "file"
            else {"json": document(checkpoint)}
        )
        outbox.enqueue(session, transport=transport, target=target, now=checkpoint.at, payload=payload,
                       key=f"audit-checkpoint:{checkpoint.id}")


# --------------------------------------------------------------------------- reading copies


@dataclass(frozen=True)
class Reading:
    anchors: list[Anchor]
    problems: list[str]  # copies that are unreadable, or not signed by the key


def parse(data: bytes, keys: Sequence[Verifier], source: str) -> Anchor:
    """One checkpoint copy, checked against the public key(s); ValueError says what is wrong.

    More than one key is for a key that was rotated: each checkpoint names the key that signed it.
    """
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError("not a JSON document") from None
    body = doc.get("statement") if isinstance(doc, dict) else None
    signature = doc.get("signature") if isinstance(doc, dict) else None
    if not isinstance(body, dict) or not isinstance(signature, str):
        raise ValueError("not a checkpoint (it needs `statement` and `signature`)")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the signature is not base64") from None
    signed = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    verifier = next((k for k in keys if k.key_id == body.get("key")), None)
    if verifier is None:
        named = body.get("key")
        raise ValueError(f"signed by key {str(named)[:16]}…, which is not among the public keys given")
    if not verifier.verify(signed, raw):
        raise ValueError(f"the signature does not match the public key {verifier.key_id[:16]}…: "
                         "the checkpoint was altered")
    seq, hash_, at = body.get("seq"), body.get("hash"), body.get("at")
    if body.get("kind") != KIND or not isinstance(seq, int) or not isinstance(hash_, str) or \
            not isinstance(at, str):
        raise ValueError("the signed statement is not an opsloop checkpoint")
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise ValueError("the signed statement's time is not a date") from None
    return Anchor(seq=seq, hash=hash_, at=when, source=source)


def read_directory(directory: Path, keys: Sequence[Verifier]) -> Reading:
    if not directory.is_dir():
        raise InvalidInput(f"{directory}: not a directory of checkpoints")
    anchors, problems = [], []
    for path in sorted(directory.glob("*.json")):
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_FILE + 1)
            if len(data) > MAX_FILE:
                raise ValueError(f"larger than {MAX_FILE // 1024} KiB")
            anchors.append(parse(data, keys, path.name))
        except (OSError, ValueError) as error:
            problems.append(f"checkpoint {path.name}: {getattr(error, 'strerror', None) or error}")
    return Reading(anchors, problems)


@dataclass(frozen=True)
class Stored:
    anchor: Anchor
    statement: bytes  # the exact signed bytes
    signature: str  # base64


def stored(session: Session, keys: Sequence[Verifier]) -> tuple[list[Stored], list[str]]:
    """The copies kept in the database that verify with `keys`, in chain order; and what is wrong
    with the others. (A deleted row does not show here; the copies outside the database do.)"""
    columns = reader.selects(session, "audit_checkpoints", ("statement", "signature"))
    rows = session.execute(text(f"SELECT id, {columns} FROM audit_checkpoints ORDER BY seq, id")).all()
    found, problems = [], []
    for row_id, signed, signature in rows:
        try:
            statement, sig = _bytes(signed), _bytes(signature).decode()
            data = json.dumps({"statement": json.loads(statement), "signature": sig}).encode()
            found.append(Stored(parse(data, keys, f"#{row_id} in the database"), statement, sig))
        except (ValueError, RecursionError) as error:
            problems.append(f"checkpoint #{row_id} in the database: {error}")
    return found, problems


def read_stored(session: Session, keys: Sequence[Verifier]) -> Reading:
    found, problems = stored(session, keys)
    return Reading([s.anchor for s in found], problems)


def _bytes(value: Any) -> bytes:
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else str(value).encode()
