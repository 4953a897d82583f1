"""Pinning: a run keeps the exact bytes it started with, whatever happens to the file."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from sqlmodel import Session, col, select

from opsloop.runbooks.loader import LoadedRunbook, parse
from opsloop.runbooks.models import RunbookRun, RunbookSnapshot
from opsloop.runbooks.schema import Runbook


def pin(session: Session, loaded: LoadedRunbook, now: datetime) -> tuple[RunbookSnapshot, str | None]:
    """The snapshot of these exact bytes (stored on first use), and the sha256 the same version
    was pinned with before, when that was other content (an edit without a version bump)."""
    snapshot = session.exec(
        select(RunbookSnapshot).where(RunbookSnapshot.sha256 == loaded.sha256)
    ).first()
    if snapshot is not None:
        return snapshot, None
    runbook = loaded.runbook
    others = session.exec(
        select(RunbookSnapshot.sha256).where(
            RunbookSnapshot.runbook_id == runbook.id, RunbookSnapshot.version == runbook.version
        )
    ).all()
    snapshot = RunbookSnapshot(runbook_id=runbook.id, version=runbook.version, sha256=loaded.sha256,
                               content=loaded.text, first_seen=now)
    session.add(snapshot)
    session.flush()
    return snapshot, others[0] if others else None


def snapshot_of(session: Session, run: RunbookRun) -> RunbookSnapshot:
    """The snapshot a run is pinned to."""
    snapshot = session.get(RunbookSnapshot, run.snapshot_id)
    assert snapshot is not None
    return snapshot


def runbook_of(snapshot: RunbookSnapshot) -> Runbook:
    """The runbook a snapshot holds, parsed from its stored text (never from the file)."""
    return _parse(snapshot.sha256, snapshot.content).runbook


@lru_cache(maxsize=256)
def _parse(sha256: str, content: str) -> LoadedRunbook:
    return parse(content.encode("utf-8"), f"snapshot {sha256[:12]}")


def snapshots(session: Session, runbook_id: str) -> list[RunbookSnapshot]:
    return list(session.exec(
        select(RunbookSnapshot).where(RunbookSnapshot.runbook_id == runbook_id)
        .order_by(col(RunbookSnapshot.id))
    ))
