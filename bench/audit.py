"""The audit chain's evidence at scale: appending with personal data sealed, verifying, exporting,
erasing one person and building an evidence bundle over 100,000 events.

The peer for appending is the same event without a personal field (nothing to
seal), measured in the same run, so the cost of sealing (an HMAC and one more
row) shows on its own.

    PYTHONPATH=src:. python bench/audit.py [--events 100000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.digest import database
from opsloop import audit
from opsloop.compliance import bundle, export
from opsloop.compliance.erasure import erase
from opsloop.compliance.signing import Signer, generate
from opsloop.compliance.verify import Anchor, verify
from opsloop.db import Database
from opsloop.models import AuditHead


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def appends(db: Database, n: int, *, personal: bool) -> float:
    """Events per second, one transaction each (as every change writes its event)."""
    key = "title" if personal else "headline"
    started = time.perf_counter()
    for i in range(n):
        with db.transaction() as session:
            audit.record(session, at=datetime.now(UTC), actor="U0RESP1", action="incident.created",
                         subject=f"INC-{i}", after={key: f"Checkout down for user{i}@acme.example",
                                                    "state": "triggered", "severity": "sev2"})
    return n / (time.perf_counter() - started)


def fill(db: Database, n: int) -> None:
    start = datetime.now(UTC) - timedelta(days=30)
    for first in range(0, n, 1000):
        entries = [audit.Entry(at=start + timedelta(seconds=i), actor="U0RESP1", action="incident.created",
                               subject=f"INC-{i}", after={"title": f"Checkout down for user{i}@acme.example",
                                                          "state": "triggered", "labels": {"service": "api"}})
                   for i in range(first, min(n, first + 1000))]
        with db.transaction() as session:
            audit.record_many(session, entries)


def timed(label: str, action: object) -> object:
    started = time.perf_counter()
    result = action() if callable(action) else None
    print(f"{label}: {time.perf_counter() - started:.2f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--appends", type=int, default=2_000)
    parser.add_argument("--postgres", metavar="URL", help="e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, database(args.postgres, folder) as url:
        db = Database.from_url(url)
        db.upgrade()
        peer = appends(db, args.appends, personal=False)
        sealed = appends(db, args.appends, personal=True)
        print(f"append, one event per transaction: {sealed:,.0f} events/s with a sealed title; "
              f"{peer:,.0f} events/s without (peer, same run): {sealed / peer:.2f}x")
        timed(f"fill to {args.events + 2 * args.appends:,} events (bulk)", lambda: fill(db, args.events))
        with db.transaction() as session:
            head = session.get(AuditHead, 1)
            assert head is not None
            anchor = Anchor(head.seq, head.hash, datetime.now(UTC), "bench")
        with db.snapshot() as session:
            verdict = timed("verify the whole chain, held against a checkpoint of its head",
                            lambda: verify(session, anchors=[anchor]))
        assert verdict is not None and verdict.ok, verdict  # type: ignore[attr-defined]
        with db.snapshot() as session:
            lines = timed("export the whole chain as JSON Lines",
                          lambda: sum(1 for _ in export.lines(session)))
        print(f"  ({lines:,} lines)")
        timed("erase one person (every table scanned, their sealed values cleared)",
              lambda: erase(db, Clock(), actor="system:bench", contact="user77@acme.example"))
        signer = Signer.load(generate(Path(folder) / "keys")[0])
        out = Path(folder) / "evidence.zip"
        with db.snapshot() as session:
            timed("evidence bundle over the last 30 days", lambda: bundle.build(
                session, since=datetime.now(UTC) - timedelta(days=31), until=datetime.now(UTC) + timedelta(1),
                out=out, signer=signer, keys=[signer.public], generated_at=datetime.now(UTC)))
        print(f"  ({out.stat().st_size / 1e6:.1f} MB)")
        db.dispose()


if __name__ == "__main__":
    main()
