"""Importing past incidents with `opsloop history import` (target: 5,000 in under 10 s on SQLite).

Writes an opsloop history CSV of past incidents spread over the ten weeks
before now (severities, tenants, services, acknowledgement and resolution
times), imports it into a fresh database through the command line, imports it
again (every id known: nothing changes, nothing duplicates), then builds the
digest to show that its control limits now come from the imported weeks.

    PYTHONPATH=src:. python bench/history_import.py [--items 5000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.digest import database
from bot.bootstrap import bootstrap
from bot.cli import main as opsloop
from bot.settings import Settings
from opsloop.history.formats import CSV_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
TENANTS = ("acme", "globex", "initech")  # in the sample accounts.yml


def write_history(path: Path, items: int, now: datetime) -> None:
    rng = random.Random(24)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for n in range(items):
            opened = now - timedelta(minutes=rng.randint(8 * 60, 70 * 24 * 60))
            acked = opened + timedelta(minutes=rng.expovariate(1 / 6))
            resolved = acked + timedelta(minutes=rng.expovariate(1 / 90))
            severity = rng.choice(("sev1", "sev2", "sev2", "sev3", "sev3", "sev3", "sev4"))
            tenants = " ".join(rng.sample(TENANTS, rng.choice((0, 0, 1, 2))))
            writer.writerow([f"PD{n:06d}", "incident", f"Past incident {n}", severity, tenants,
                             rng.choice(("checkout", "search", "billing", "")), opened.isoformat(),
                             acked.isoformat(), min(resolved, now - timedelta(minutes=1)).isoformat()])


def run(argv: list[str]) -> float:
    began = time.perf_counter()
    code = opsloop(argv)
    elapsed = time.perf_counter() - began
    if code != 0:
        raise SystemExit(f"opsloop {' '.join(argv)} exited {code}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--postgres", metavar="URL", help="e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, database(args.postgres, folder) as url:
        settings = Settings(database_url=url, config=ROOT / "opsloop.yml", runbooks_dir=ROOT / "runbooks")
        services = bootstrap(settings, migrate=True)  # migrated, sample accounts loaded
        os.environ.update(OPSLOOP_DATABASE_URL=url, OPSLOOP_CONFIG=str(settings.config),
                          OPSLOOP_RUNBOOKS_DIR=str(settings.runbooks_dir), OPSLOOP_LOG_LEVEL="WARNING")
        path = Path(folder) / "history.csv"
        write_history(path, args.items, datetime.now(UTC))
        first = run(["history", "import", str(path)])
        again = run(["history", "import", str(path)])
        digest = services.digests.build()
        control = digest.control
        print(f"import {args.items:,} past incidents ({services.db.engine.dialect.name}): {first:.2f} s "
              f"(target < 10 s); again, all unchanged: {again:.2f} s")
        print(f"next digest: {len(control.trailing)} trailing days with resolutions, centre "
              f"{(control.centre or 0) / 60:.0f} min, upper limit {(control.upper or 0) / 60:.0f} min, "
              f"in control: {control.in_control}")
        services.db.dispose()


if __name__ == "__main__":
    main()
