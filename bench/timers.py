"""Timer firing lag under load: 100,000 open timers due over a window, swept in real time.

Seeds the timers into a fresh database (a temp SQLite file, or a throwaway
database on the PostgreSQL server given with --postgres), then runs the
production loop (bot.scheduler's APScheduler job calling the sweeper) with the
system clock until every timer has fired. Lag is measured per timer from its
due time to the commit of the batch that fired it.

    PYTHONPATH=src:. python bench/timers.py [--timers 100000] [--window 60] [--postgres URL]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from bot.bootstrap import bootstrap
from bot.scheduler import build_scheduler, stop_scheduler
from bot.settings import Settings
from opsloop.db import Database
from opsloop.timers.models import Timer

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def seed(db: Database, count: int, start: datetime, window: float) -> float:
    began = time.perf_counter()
    created = datetime.now(UTC)
    rows = [{"kind": "bench", "due_at": start + timedelta(seconds=window * i / count), "payload": {},
             "created_at": created} for i in range(count)]
    with db.transaction() as session:
        for chunk in range(0, count, 5000):
            session.execute(insert(Timer), rows[chunk:chunk + 5000])
    return time.perf_counter() - began


def run(url: str, count: int, window: float, lead: float, interval: float, batch: int) -> None:
    settings = Settings(database_url=url, config=ROOT / "opsloop.yml", runbooks_dir=ROOT / "runbooks",
                        sweep_interval=interval)
    services = bootstrap(settings, migrate=True)
    start = datetime.now(UTC) + timedelta(seconds=lead)
    seconds = seed(services.db, count, start, window)
    print(f"{services.db.engine.dialect.name}: seeded {count:,} timers in {seconds:.1f}s, "
          f"due over {window:.0f}s from {lead:.0f}s after the start of seeding")
    if datetime.now(UTC) > start:
        print("  warning: seeding overran the lead; the first timers start late (raise --lead)")

    lags: list[float] = []
    fired_in_batch: list[datetime] = []

    def bench(session: Session, timer: Timer, now: datetime) -> str:
        fired_in_batch.append(timer.due_at)
        return "fired"

    def committed() -> None:
        at = datetime.now(UTC)
        lags.extend((at - due).total_seconds() for due in fired_in_batch)
        fired_in_batch.clear()

    sweeper = services.sweeper
    sweeper.handlers["bench"] = bench
    sweeper.after_commit = committed
    sweeper.batch = batch
    scheduler = build_scheduler(services, interval=interval)
    scheduler.start()
    try:
        deadline = time.monotonic() + lead + window + 120
        while len(lags) < count and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        stop_scheduler(scheduler)
    stats = sweeper.stats
    busy = stats.durations_ms
    print(f"  fired {len(lags):,} of {count:,} with the sweep every {interval}s, batches of {batch}")
    p50, p99 = percentile(lags, 0.5) * 1000, percentile(lags, 0.99) * 1000
    print(f"  firing lag: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(lags) * 1000:.0f} ms")
    print(f"  sweep cost: {stats.batches:,} batches, median {statistics.median(busy):.1f} ms, "
          f"p99 {percentile(busy, 0.99):.1f} ms per batch; {stats.fired / stats.busy_seconds:,.0f} rows/s "
          f"while busy; {stats.sweeps:,} sweeps in all")
    services.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timers", type=int, default=100_000)
    parser.add_argument("--window", type=float, default=60.0, help="seconds over which the timers come due")
    parser.add_argument("--lead", type=float, default=10.0, help="seconds from seeding to the first due time")
    parser.add_argument("--interval", type=float, default=None, help="sweep interval (default: the setting)")
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--postgres", metavar="URL", help="also run on a throwaway database on this server")
    args = parser.parse_args()
    interval = args.interval if args.interval is not None else Settings().sweep_interval
    with tempfile.TemporaryDirectory() as folder:
        run(f"sqlite:///{folder}/bench.db", args.timers, args.window, args.lead, interval, args.batch)
    if args.postgres:
        name = f"opsloop_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
            run(url, args.timers, args.window, args.lead, interval, args.batch)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
