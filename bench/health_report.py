"""The health report over many accounts and outcomes: `/health report` and `opsloop health report`.

Seeds accounts, a daily score series for each of them (`--days` days), renewal outcomes,
prompts and closed plays into a fresh temp SQLite database (or `--postgres URL`, which must be
an empty database it may migrate), then times `Health.report` (every query and the AUCs) and the
rendering, and `Health.calibrate`.

    PYTHONPATH=src:. python bench/health_report.py [--accounts 10000] [--outcomes 2000] [--days 120]
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
from opsloop.health.models import HealthDaily, HealthPlay, HealthPrompt, RenewalOutcome
from opsloop.health.present import report_text
from opsloop.models import Account

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 20_000


def seed(db: object, accounts: int, outcomes: int, days: int, now: datetime) -> int:
    rng = random.Random(7)
    ids = [f"t{i:05d}" for i in range(accounts)]
    today = now.date()
    rows = 0
    with db.transaction() as session:  # type: ignore[attr-defined]
        tiers = ("enterprise", "mid-market", "smb")
        session.execute(insert(Account), [{"id": t, "name": t.upper(), "tier": tiers[i % 3],
                                           "arr": 10_000 * (1 + i % 50), "csm": "U0CSM1"}
                                          for i, t in enumerate(ids)])
        renewing = rng.sample(ids, outcomes)
        lost = {t for t in renewing if rng.random() < 0.25}
        batch = []
        for t in ids:
            base = rng.randint(40, 95) - (25 if t in lost else 0)
            for d in range(days):
                day = today - timedelta(days=d)
                score = max(0, min(100, base + rng.randint(-8, 8)))
                band = "healthy" if score >= 75 else "watch" if score >= 55 else "at-risk"
                at = datetime.combine(day, datetime.min.time(), UTC)
                batch.append({"tenant_id": t, "day": day, "at": at, "score": score, "band": band,
                              "units": {"usage": round(rng.random(), 2)}})
                if len(batch) >= CHUNK:
                    session.execute(insert(HealthDaily), batch)
                    rows += len(batch)
                    batch = []
        if batch:
            session.execute(insert(HealthDaily), batch)
            rows += len(batch)
        session.execute(insert(RenewalOutcome), [
            {"tenant_id": t, "date": today - timedelta(days=rng.randint(1, max(2, days - 95))),
             "outcome": rng.choice(("churned", "contracted") if t in lost else ("renewed", "expanded")),
             "arr_before": 100_000, "arr_after": 0 if t in lost else 110_000, "source": "bench",
             "recorded_at": now} for t in renewing])
        prompted = rng.sample(renewing, outcomes // 2)
        opened = now - timedelta(days=60)
        session.execute(insert(HealthPrompt), [
            {"tenant_id": t, "csm": "U0CSM1", "opened_at": opened, "score": 40, "reasons": ["usage"],
             "playbook": rng.choice(("technical-deep-dive", "service-review")),
             "status": rng.choice(("taken", "snoozed", "dismissed")), "ended_at": opened + timedelta(days=9),
             "end_reason": "recovered"} for t in prompted])
        session.execute(insert(HealthPlay), [
            {"tenant_id": t, "owner": "U0CSM1", "playbook_id": "technical-deep-dive",
             "playbook_version": "1.0.0", "playbook_sha256": "0" * 64, "opened_at": opened, "score": 40,
             "escalated_to": [], "closed_at": opened + timedelta(days=9), "closed_by": "U0CSM1",
             "outcome": rng.choice(("saved", "churned")), "note": "bench"}
            for t in prompted[: outcomes // 4]])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--outcomes", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=120, help="days of daily scores per account")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.postgres or f"sqlite:///{folder}/bench.db"
        settings = Settings(database_url=url, config=ROOT / "opsloop.yml", runbooks_dir=ROOT / "runbooks")
        services = bootstrap(settings, migrate=True, load_accounts=False)
        now = datetime.now(UTC)
        began = time.perf_counter()
        rows = seed(services.db, args.accounts, args.outcomes, args.days, now)
        print(f"seeded {args.accounts:,} accounts, {rows:,} daily scores, {args.outcomes:,} outcomes "
              f"in {time.perf_counter() - began:.1f}s ({services.db.engine.dialect.name})")
        took = []
        for _ in range(args.runs):
            began = time.perf_counter()
            text = report_text(services.health.report(actor="system:bench"))
            took.append(time.perf_counter() - began)
        print(f"health report over {args.accounts:,} accounts and {args.outcomes:,} outcomes: "
              f"median {statistics.median(took):.2f}s, max {max(took):.2f}s over {args.runs} runs "
              "(target < 2 s)")
        line = next(x for x in text.splitlines() if x.startswith("• 90 days before"))
        print(f"  {line}")
        began = time.perf_counter()
        services.health.calibrate(days=90)
        print(f"calibrate (fit and held-out AUC): {time.perf_counter() - began:.2f}s")
        services.db.dispose()


if __name__ == "__main__":
    main()
