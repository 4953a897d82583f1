"""The core's cost of one declare: CPU ms, SQL statements, and declares per second end to end.

Builds the real services (`bot.bootstrap`, the sample policy, runbooks and
accounts) on a SQLite file in a temporary folder, or `--database URL`, and
declares N incidents (by default sev2 touching the tenant `acme`, so the
declare does the sample policy's runbook, SLA clocks, feedback loops and
health work) one after the other in this process. It prints

- core CPU ms per declare (`time.process_time`, the declares alone),
- SQL statements per declare (a `before_cursor_execute` listener on the engine),
- declares per second end to end: the declares plus draining the outbox they
  filled (cards, threads, notices, pages) to a sender that only records.

    .venv/bin/python bench/declare.py [-n 300] [--severity sev2] [--tenant acme] [--database URL]

Goals (issue 21): <= 4 ms of core time and <= 12 statements per declare on
SQLite; >= 250 declares/s end to end on SQLite, >= 150/s on PostgreSQL.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.serving import reset_postgres  # noqa: E402 - after the path is set
from bot.bootstrap import bootstrap  # noqa: E402
from bot.settings import Settings  # noqa: E402
from opsloop.outbox import Dispatcher  # noqa: E402
from opsloop.types import Severity  # noqa: E402
from tests.support import RecordingSender  # noqa: E402

TRANSPORTS = ("chat", "email", "webhook", "file")  # what the console delivers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--declares", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured declares first")
    parser.add_argument("--severity", default="sev2")
    parser.add_argument("--tenant", action="append", help="a tenant the incidents touch (default: acme)")
    parser.add_argument("--database", help="a SQLAlchemy URL of a scratch PostgreSQL database "
                                           "(its public schema is dropped first)")
    parser.add_argument("--statements", action="store_true", help="print the statements of one declare")
    args = parser.parse_args()
    tenants = ["acme"] if args.tenant is None else [t for t in args.tenant if t]  # --tenant '': none
    severity = Severity(args.severity)
    with tempfile.TemporaryDirectory() as folder:
        database = args.database or f"sqlite:///{Path(folder) / 'bench.db'}"
        if args.database:
            database = reset_postgres(database)
        settings = Settings(database_url=database, config=ROOT / "opsloop.yml",
                            runbooks_dir=ROOT / "runbooks", playbooks_dir=ROOT / "playbooks")
        services = bootstrap(settings, migrate=True)
        sender = RecordingSender()
        dispatcher = Dispatcher(services.db, dict.fromkeys(TRANSPORTS, sender), services.clock,
                                prepare=services.cards.prepare_outbound)
        statements: list[str] = []

        @event.listens_for(services.db.engine, "before_cursor_execute")
        def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            statements.append(statement)

        def declare(n: int) -> None:
            services.workitems.declare(actor="U0RESP1", title=f"bench incident {n}", severity=severity,
                                       tenants=tenants)

        for n in range(args.warmup):
            declare(n)
        dispatcher.drain(max_rounds=100_000)
        statements.clear()
        cpu = time.process_time()
        wall = time.perf_counter()
        for n in range(args.warmup, args.warmup + args.declares):
            declare(n)
        cpu = time.process_time() - cpu
        declared_wall = time.perf_counter() - wall
        declared_statements = len(statements)
        kinds = Counter(s.split(None, 1)[0].upper() for s in statements)
        sent_before = len(sender.sent)
        dispatcher.drain(max_rounds=100_000)
        end_to_end = time.perf_counter() - wall
        delivered = len(sender.sent) - sent_before
        if args.statements:
            statements.clear()
            declare(args.warmup + args.declares)
            for s in statements:
                print("   ", " ".join(s.split())[:200])
        services.db.dispose()
    n = args.declares
    per_cpu = cpu * 1000 / n
    per_sql = declared_statements / n
    rate = n / end_to_end
    store = "PostgreSQL" if args.database else "SQLite"
    print(f"declare: {n} x {severity.value} touching {', '.join(tenants) or 'no tenant'} on {store} "
          f"(after {args.warmup} warm-up)")
    print(f"core CPU: {per_cpu:.2f} ms per declare (goal <= 4 ms): {'met' if per_cpu <= 4 else 'NOT met'}")
    print(f"SQL: {per_sql:.1f} statements per declare (goal <= 12): {'met' if per_sql <= 12 else 'NOT met'}  "
          f"[{', '.join(f'{k} {v / n:.1f}' for k, v in kinds.most_common())}]")
    goal = 150 if args.database else 250
    print(f"declares alone: {n / declared_wall:.0f}/s; outbox: {delivered} messages delivered "
          f"({delivered / n:.1f} per declare)")
    print(f"end to end: {rate:.0f} declares/s (goal >= {goal}/s on {store}): "
          f"{'met' if rate >= goal else 'NOT met'}")


if __name__ == "__main__":
    main()
