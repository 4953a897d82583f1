"""Checking the audit chain: every link, every sealed value, every erasure, every checkpoint.

The walk goes from genesis to the newest event and collects each defect as a
`Problem` naming the event; it never raises for what it reads (see `reader`).
What it can prove depends on what it is given:

- alone, that the chain is consistent with itself: each event's hash matches
  its content and links to the one before, the head row matches the last
  event, sealed personal data matches its commitments, and every cleared
  value is accounted for by an erasure event;
- with signed checkpoints (`Anchor`s, their signatures already checked), that
  every checkpointed head is still in the chain at its position with its
  hash, so cutting the tail, or editing an event and recomputing every later
  hash and the head, is found: the first checkpoint it contradicts is named.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlmodel import Session

from opsloop.compliance import reader
from opsloop.compliance.chain import GENESIS
from opsloop.compliance.personal import erasure_digest, is_commitment, matches, resolve
from opsloop.models import AuditHead

ERASURE_ACTION = "privacy.erased"
MAX_PROBLEMS = 1000  # kept in memory; the rest are counted
MOVE_REACH = 64  # how far away an altered event's hash is looked for, to tell a move from an edit


@dataclass(frozen=True)
class Problem:
    seq: int | None
    text: str


@dataclass(frozen=True)
class Anchor:
    """A signed checkpoint's claim: event `seq` of the chain has hash `hash` (as of `at`)."""

    seq: int
    hash: str
    at: datetime
    source: str  # where it came from, for messages (a file name, "the database")


@dataclass
class Verdict:
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0  # beyond MAX_PROBLEMS
    last_seq: int = 0
    last_hash: str = GENESIS
    anchors: int = 0  # checkpoints compared with the chain
    newest_anchor: Anchor | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problem(self) -> str | None:
        return self.problems[0].text if self.problems else None

    @property
    def bad_seq(self) -> int | None:
        return self.problems[0].seq if self.problems else None

    def add(self, seq: int | None, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(seq, text))
        else:
            self.more_problems += 1


def verify(session: Session, *, anchors: Sequence[Anchor] = ()) -> Verdict:
    """Walk the whole chain; with `anchors`, also hold it against those checkpoints."""
    verdict = Verdict()
    wanted = {a.seq for a in anchors}
    hashes: dict[int, str] = {0: GENESIS}
    erasures: dict[int, tuple[object, object]] = {}  # seq -> (count, digest) as the event says
    prev_hash: str | None = GENESIS
    expected = 1
    for batch in reader.events(session):
        side = reader.side_rows(session, batch[0].seq, batch[-1].seq)
        for link in batch:
            gap = link.seq != expected
            if gap:
                missing = (f"event {expected}" if link.seq == expected + 1
                           else f"events {expected}..{link.seq - 1}")
                verdict.add(expected, f"{missing} missing before event {link.seq}")
            if isinstance(link, reader.Unreadable):
                verdict.add(link.seq, f"event {link.seq} cannot be read: {link.why}")
                if link.seq in wanted and link.hash is not None:
                    hashes[link.seq] = link.hash
                prev_hash, expected = link.hash, link.seq + 1
                continue
            intact = link.digest() == link.hash
            moved = None if intact else _moved_from(link)
            if moved is not None:  # its links and sealed data are those of its old place: that is the news
                verdict.add(link.seq, f"event {link.seq} holds what was event {moved}: events were reordered")
            else:
                if not gap and prev_hash is not None and link.prev_hash != prev_hash:
                    verdict.add(link.seq, f"event {link.seq} does not link to the event before it")
                if not intact:
                    verdict.add(link.seq, f"event {link.seq} ({_short(link.action)} {_short(link.subject)}) "
                                "was altered: its content does not match its hash")
                _check_personal(verdict, link, side)
            if link.action == ERASURE_ACTION and link.after is not None:
                erasures[link.seq] = (link.after.get("erased"), link.after.get("erased_digest"))
            if link.seq in wanted:
                hashes[link.seq] = link.hash
            verdict.checked += 1
            prev_hash, expected = link.hash, link.seq + 1
    verdict.last_seq, verdict.last_hash = expected - 1, prev_hash or ""
    _check_head(session, verdict)
    _check_erasures(session, verdict, erasures)
    _check_anchors(verdict, anchors, hashes)
    return verdict


def _moved_from(link: reader.Link, reach: int = MOVE_REACH) -> int | None:
    """The position whose hash this row carries, when a row was moved rather than edited."""
    for seq in range(max(1, link.seq - reach), link.seq + reach + 1):
        if seq != link.seq and replace(link, seq=seq).digest() == link.hash:
            return seq
    return None


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _check_personal(verdict: Verdict, link: reader.Link,
                    side: dict[tuple[int, str], reader.SideRow]) -> None:
    document = {"before": link.before, "after": link.after}
    for pointer in link.personal or ():
        where = f"event {link.seq}: the personal data at {_short(pointer)}"
        try:
            commitment = resolve(document, pointer)
        except LookupError:
            verdict.add(link.seq, f"{where} is named but absent from the event")
            continue
        if not is_commitment(commitment):
            verdict.add(link.seq, f"{where} is not a commitment")
            continue
        row = side.get((link.seq, pointer))
        if row is None:
            verdict.add(link.seq, f"{where} is missing from audit_personal (deleted, not erased)")
        elif row.why is not None:
            verdict.add(link.seq, f"{where} cannot be read: {row.why}")
        elif row.erased_in is not None:
            if row.salt is not None or row.value is not None:
                verdict.add(link.seq, f"{where} is marked erased but still held")
        elif row.salt is None or row.value is None:
            verdict.add(link.seq, f"{where} was cleared without an erasure event")
        elif not matches(str(commitment), row.salt, row.value):
            verdict.add(link.seq, f"{where} was altered: it no longer matches its commitment")


def _check_head(session: Session, verdict: Verdict) -> None:
    head = session.get(AuditHead, 1)
    if head is None:
        verdict.add(None, "the chain's head record is missing")
    elif head.seq != verdict.last_seq or head.hash != verdict.last_hash:
        verdict.add(verdict.last_seq + 1,
                    f"the chain ends at event {verdict.last_seq} but its head records event {head.seq}")


def _check_erasures(session: Session, verdict: Verdict, erasures: dict[int, tuple[object, object]]) -> None:
    cleared: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for seq, pointer, erased_in, why in reader.erased_rows(session):
        if why is not None:
            verdict.add(seq, f"event {seq}: personal data cannot be read: {why}")
        elif erased_in is None:
            continue  # a cleared value with no erasure named: reported where the event is walked
        elif erased_in not in erasures:
            verdict.add(seq, f"event {seq}: the personal data at {_short(pointer)} was cleared in the "
                        f"name of event {erased_in}, which is no erasure")
        else:
            cleared[erased_in].append((seq, pointer))
    for seq, (count, digest) in erasures.items():
        pairs = cleared.get(seq, [])
        if count != len(pairs) or digest != erasure_digest(pairs):
            verdict.add(seq, f"erasure event {seq} cleared {count} value(s), but {len(pairs)} are "
                        "cleared in its name: personal data was cleared, or restored, outside an erasure")


def _check_anchors(verdict: Verdict, anchors: Sequence[Anchor], hashes: dict[int, str]) -> None:
    for anchor in sorted(anchors, key=lambda a: (a.seq, a.at)):
        verdict.anchors += 1
        if anchor.seq > verdict.last_seq:
            verdict.add(anchor.seq, f"checkpoint {anchor.source} (signed {anchor.at:%Y-%m-%d %H:%M:%S}Z) "
                        f"records event {anchor.seq}, but the chain ends at event {verdict.last_seq}: "
                        "events were deleted from its tail")
            return
        if hashes.get(anchor.seq) != anchor.hash:
            verdict.add(anchor.seq, f"checkpoint {anchor.source} (signed {anchor.at:%Y-%m-%d %H:%M:%S}Z) "
                        f"records event {anchor.seq} with hash {anchor.hash[:16]}…, but the chain has "
                        f"{(hashes.get(anchor.seq) or 'no such event')[:16]}…: the chain was rewritten "
                        f"at or before event {anchor.seq}")
            return
        if verdict.newest_anchor is None or anchor.seq >= verdict.newest_anchor.seq:
            verdict.newest_anchor = anchor
