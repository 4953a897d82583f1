"""Building the leadership digest over a year of past work items (target: < 1 s for 100,000).

Seeds work items (incidents, escalations, exceptions) spread over the past
year with their acknowledgement and resolution times, response and resolution
SLA clocks, a tenant each, accounts with health scores, feedback loops and
remediation calls, with bulk inserts; then times `Digests.build` (every
figure, the XmR verdict) and the chart, the median over several runs.

    PYTHONPATH=src:. python bench/digest.py [--items 100000] [--runs 5] [--postgres URL]

With --postgres, a throwaway database is created on that server and dropped after.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from bot.bootstrap import Services, bootstrap
from bot.settings import Settings
from opsloop.health.models import HealthScore
from opsloop.loops.models import FeedbackLoop
from opsloop.models import Account, WorkItem, WorkItemTenant
from opsloop.remediation.models import RemediationCall
from opsloop.runbooks.models import RunbookRun, RunbookSnapshot, RunbookStepRun
from opsloop.sla.models import SlaClock

ROOT = Path(__file__).resolve().parent.parent
BATCH = 20_000


def _chunks(rows: list[dict[str, object]]) -> Iterator[list[dict[str, object]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start:start + BATCH]


def seed(services: Services, items: int, now: datetime) -> None:
    rng = random.Random(7)
    accounts = [f"t{i:05d}" for i in range(2000)]
    kinds = ["incident"] * 16 + ["escalation"] * 3 + ["exception"]
    work, clocks, tenants, loops = [], [], [], []
    for n in range(1, items + 1):
        kind = rng.choice(kinds)
        created = now - timedelta(minutes=rng.randint(60, 365 * 24 * 60))
        acked = created + timedelta(minutes=rng.expovariate(1 / 8)) if kind != "exception" else None
        resolved = created + timedelta(minutes=rng.expovariate(1 / 180)) if kind != "exception" else None
        if resolved is not None and resolved > now:
            resolved = None
        state = "resolved" if resolved else ("requested" if kind == "exception" else "acknowledged")
        work.append({"id": n, "ref": f"{kind[:3].upper()}-{n}", "kind": kind, "number": n, "title": "bench",
                     "severity": f"sev{rng.randint(1, 4)}", "state": state, "created_by": "bench",
                     "labels": {}, "created_at": created, "updated_at": resolved or created,
                     "acknowledged_at": acked,
                     "resolved_at": resolved})
        tenants.append({"work_item_id": n, "tenant_id": rng.choice(accounts)})
        if kind != "exception":
            for target, seconds, stop in (("response", 900, acked), ("resolution", 4 * 3600, resolved)):
                if stop is not None:
                    met = (stop - created).total_seconds() <= seconds
                    clocks.append({"work_item_id": n, "target": target, "policy_index": 0, "calendar": "24x7",
                                   "target_seconds": seconds, "started_at": created, "state": "met" if met
                                   else "breached", "settled_at": stop if met else
                                   created + timedelta(seconds=seconds), "used_seconds": 0.0,
                                   "paused_seconds": 0.0})
        if n % 10 == 0:
            loops.append({"work_item_id": n, "audience": "sales", "tenant_id": "", "transport": "chat",
                          "target": "C0SALES", "opened_at": created, "notices": 1,
                          "resolution_key": f"res:{n}" if resolved else None})
    db = services.db
    with db.transaction() as session:
        session.execute(insert(Account), [{"id": t, "name": t.upper(), "tier": "enterprise",
                                           "arr": 1000 * (i % 500),
                                           "renewal_date": (now + timedelta(days=i % 365)).date()}
                                          for i, t in enumerate(accounts)])
        tables = ((WorkItem, work), (WorkItemTenant, tenants), (SlaClock, clocks), (FeedbackLoop, loops))
        for table, rows in tables:
            for chunk in _chunks(rows):
                session.execute(insert(table), chunk)
        session.execute(insert(HealthScore), [
            {"tenant_id": t, "at": now - timedelta(days=d), "score": rng.randint(20, 100),
             "band": rng.choice(["healthy", "watch", "at-risk"]), "factors": {}, "cause": "bench"}
            for t in accounts for d in (1, 7, 14)])
        session.execute(insert(RunbookSnapshot), [{"id": 1, "runbook_id": "r", "version": "1",
                                                   "sha256": "0" * 64, "content": "", "first_seen": now}])
        session.execute(insert(RunbookRun), [{"id": 1, "work_item_id": 1, "snapshot_id": 1, "runbook_id": "r",
                                              "inputs": {}, "state": "running", "started_by": "bench",
                                              "created_at": now}])
        session.execute(insert(RunbookStepRun), [{"id": s, "run_id": 1, "step_id": f"s{s}", "position": s,
                                                  "state": "running", "outputs": {}, "approvals": [],
                                                  "updated_at": now} for s in range(1, 2001)])
        session.execute(insert(RemediationCall), [
            {"step_run_id": s, "run_id": 1, "step_id": f"s{s}",
             "state": rng.choice(["succeeded", "failed", "pending"]), "request": {}, "created_at": now,
             "updated_at": now,
             "finished_at": now - timedelta(hours=rng.randint(1, 24 * 60))} for s in range(1, 2001)])
    print(f"seeded {len(work):,} work items, {len(clocks):,} SLA clocks, {len(loops):,} feedback loops")


@contextmanager
def database(postgres: str | None, folder: str) -> Iterator[str]:
    if postgres is None:
        yield f"sqlite:///{folder}/bench.db"
        return
    name = f"opsloop_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", metavar="URL", help="e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, database(args.postgres, folder) as url:
        settings = Settings(database_url=url, config=ROOT / "opsloop.yml", runbooks_dir=ROOT / "runbooks")
        services = bootstrap(settings, migrate=True, load_accounts=False)
        now = datetime.now(UTC)
        began = time.perf_counter()
        seed(services, args.items, now)
        print(f"seeding took {time.perf_counter() - began:.1f}s ({services.db.engine.dialect.name})")
        builds, charts = [], []
        for _ in range(args.runs):
            began = time.perf_counter()
            digest = services.digests.build(now)
            builds.append(time.perf_counter() - began)
            began = time.perf_counter()
            services.digests.chart(digest)
            charts.append(time.perf_counter() - began)
        f = digest.figures
        print(f"last week: {sum(f.opened['week'].values())} opened, "
              f"{sum(f.resolved['week'].values())} resolved, {len(digest.control.trailing)} trailing points, "
              f"in control: {digest.control.in_control}")
        print(f"build the digest over {args.items:,} work items: "
              f"median {statistics.median(builds) * 1000:.0f} ms, max {max(builds) * 1000:.0f} ms "
              f"over {args.runs} runs (target < 1000 ms)")
        print(f"draw the chart: median {statistics.median(charts) * 1000:.0f} ms")
        services.db.dispose()


if __name__ == "__main__":
    main()
