"""The daily health recompute over many accounts, and one rescore as a work item changes.

Seeds accounts, incidents touching them and a month of signals into a fresh
temp SQLite database, then times `Health.recompute_all_in` (what the daily
timer runs, one transaction) and single-tenant rescoring (what every work
item change or signal request pays).

    PYTHONPATH=src:. python bench/health.py [--accounts 5000] [--incidents 20000] [--runs 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bot.bootstrap import bootstrap
from bot.settings import Settings
from opsloop import audit
from opsloop.health.models import HealthSignal
from opsloop.models import Account, WorkItem, WorkItemTenant

ROOT = Path(__file__).resolve().parent.parent


def seed(services: object, accounts: int, incidents: int, now: datetime) -> None:
    db = services.db  # type: ignore[attr-defined]
    rng = random.Random(7)
    tiers = ("enterprise", "mid-market", "smb")
    ids = [f"t{i:05d}" for i in range(accounts)]
    with db.transaction() as session:
        session.execute(insert(Account), [
            {"id": t, "name": t.upper(), "tier": tiers[i % 3], "arr": 10_000 * (i % 50), "csm": "U0CSM1",
             "renewal_date": (now + timedelta(days=i % 365)).date()} for i, t in enumerate(ids)])
        session.execute(insert(WorkItem), [
            {"id": n + 1, "ref": f"INC-{n + 1}", "kind": "incident", "number": n + 1, "title": "bench",
             "severity": f"sev{rng.randint(1, 4)}", "state": "resolved", "created_by": "bench", "labels": {},
             "created_at": now - timedelta(hours=rng.randint(1, 24 * 60)), "updated_at": now}
            for n in range(incidents)])
        session.execute(insert(WorkItemTenant), [
            {"work_item_id": n + 1, "tenant_id": rng.choice(ids)} for n in range(incidents)])
        value = {"usage": lambda: rng.uniform(-1, 1), "nps": lambda: rng.uniform(-100, 100),
                 "tickets": lambda: float(rng.randint(0, 9))}
        session.execute(insert(HealthSignal), [
            {"tenant_id": t, "kind": kind, "at": now - timedelta(days=d), "received_at": now,
             "source": "bench", "value": value[kind]()}
            for t in ids for d in range(0, 30, 3) for kind in value])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--incidents", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(database_url=f"sqlite:///{folder}/bench.db", config=ROOT / "opsloop.yml",
                            runbooks_dir=ROOT / "runbooks")
        services = bootstrap(settings, migrate=True, load_accounts=False)
        now = datetime.now(UTC)
        began = time.perf_counter()
        seed(services, args.accounts, args.incidents, now)
        print(f"seeded {args.accounts:,} accounts, {args.incidents:,} incidents, "
              f"{args.accounts * 30:,} signals in {time.perf_counter() - began:.1f}s")
        daily = []
        for _ in range(args.runs):
            began = time.perf_counter()
            with services.db.transaction() as session:
                audit.lock_chain(session)
                services.health.recompute_all_in(session, cause="bench")
            daily.append(time.perf_counter() - began)
        print(f"daily recompute of {args.accounts:,} accounts: median {statistics.median(daily):.2f}s, "
              f"max {max(daily):.2f}s over {args.runs} runs")
        single = []
        rng = random.Random(3)
        for _ in range(200):
            tenant = f"t{rng.randrange(args.accounts):05d}"
            began = time.perf_counter()
            services.health.recompute([tenant], cause="bench")
            single.append((time.perf_counter() - began) * 1000)
        single.sort()
        print(f"one tenant rescored (own transaction): median {statistics.median(single):.1f} ms, "
              f"p99 {single[int(len(single) * 0.99) - 1]:.1f} ms")
        services.db.dispose()


if __name__ == "__main__":
    main()
