"""A fleet rollout of 10,000 tenants against a local target: opsloop's own overhead per tenant call, and
peak memory.

The target is a plain HTTP server in a process of its own (so its memory and CPU are not counted),
answering 200 at once. opsloop runs the production path: the catalog imported, `/runbook run` pinning
the targets, then the rollout worker claiming, calling (httpx, the allow-list and address checks, one
Idempotency-Key each) and recording every tenant, audited, wave after wave. Time spent inside the
HTTP exchange is measured per call; what is left of the wall time is opsloop's own:

    overhead per call = (wall time - time inside calls / concurrency) / tenants

Run with `--concurrency 1` to see it without overlap.

Peak memory is the process's max RSS (opsloop and this script; the target runs apart). The script's
own share is kept small: the account catalog is written line by line, never built in memory, and
the peak is also shown as it stood after start-up (imports, migrations, seeding the catalog) and
after pinning. The catalog is a CSV file by default (what a 10,000-row export is); `--catalog yaml`
measures a YAML one, whose parse (PyYAML holds the whole document's node tree) costs more at start.

    PYTHONPATH=src:. python bench/rollout.py [--tenants 10000] [--concurrency 8] [--catalog csv|yaml]
                                             [--postgres URL]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.bootstrap import bootstrap
from bot.settings import Settings
from opsloop.remediation.http import Call, HttpExecutor, Outcome
from opsloop.rollouts.models import Rollout

ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 2.0  # issue 22: opsloop's own overhead per tenant call
GOAL_MB = 150.0  # issue 22: peak memory
SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY, as a real API server sets
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = b'{"ok": true}'
        self.send_response(200); self.send_header("content-length", str(len(body)))
        self._headers_buffer.append(b"\\r\\n" + body)  # head and body in one write
        self.flush_headers()
    def log_message(self, *a): pass
server = ThreadingHTTPServer(("127.0.0.1", 0), H)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""

RUNBOOK = """schema_version: 1
id: bench-rollout
version: 1.0.0
title: Bench rollout
owners: [U0SRE1]
steps:
  - id: patch
    type: http
    foreach: tenants
    waves: [{{name: canary, size: 1}}, {{percent: 10}}, {{rest: true}}]
    max_concurrency: {concurrency}
    max_errors: "1%"
    request:
      method: POST
      url: "http://127.0.0.1:{port}/tenants/{{{{ tenant.id }}}}/patch"
      json: {{tier: "{{{{ tenant.tier }}}}"}}
"""


class TimedExecutor(HttpExecutor):
    """The production executor, timing each exchange (the far side's share of the wall time)."""

    spent = 0.0
    lock = threading.Lock()

    def execute(self, call: Call, idempotency_key: str) -> Outcome:
        began = time.perf_counter()
        try:
            return super().execute(call, idempotency_key)
        finally:
            with self.lock:
                TimedExecutor.spent += time.perf_counter() - began


def database(postgres: str | None, directory: Path) -> tuple[str, Any]:
    if postgres is None:
        return f"sqlite:///{directory / 'bench.db'}", None
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    name = f"opsloop_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(postgres).set(database=name).render_as_string(hide_password=False), (admin, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--catalog", choices=("csv", "yaml"), default="csv",
                        help="the account catalog's format (default csv)")
    parser.add_argument("--postgres", help="a PostgreSQL server URL (a throwaway database is made on it)")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp), port, args.tenants, args.concurrency, args.postgres, args.catalog)
    finally:
        server.kill()
        server.wait()


def write_catalog(path: Path, tenants: int) -> None:
    """The catalog, line by line: this script's memory is not opsloop's."""
    tiers = ("smb", "mid-market", "enterprise")
    with path.open("w", encoding="utf-8") as out:
        if path.suffix == ".csv":
            out.write("id,name,tier,region\n")
        for i in range(tenants):
            if path.suffix == ".csv":
                out.write(f"t{i:05d},Tenant {i},{tiers[i % 3]},eu\n")
            else:
                out.write(f"- {{id: t{i:05d}, name: Tenant {i}, tier: {tiers[i % 3]}, region: eu}}\n")


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def verdict(value: float, goal: float) -> str:
    return "met" if value < goal else "NOT met"


def run(tmp: Path, port: int, tenants: int, concurrency: int, postgres: str | None, catalog: str) -> None:
    runbooks = tmp / "runbooks"
    shutil.copytree(ROOT / "runbooks", runbooks)  # the policy's routing names them
    (runbooks / "bench-rollout.yaml").write_text(RUNBOOK.format(concurrency=concurrency, port=port))
    accounts = tmp / f"accounts.{'csv' if catalog == 'csv' else 'yml'}"
    write_catalog(accounts, tenants)
    policy = yaml.safe_load((ROOT / "opsloop.yml").read_text())
    policy["accounts"] = str(accounts)
    policy["actions"].update(allow_hosts=["127.0.0.1"], allow_loopback=True)
    policy.pop("audiences", None)  # the rollout, not customer mail, is measured
    config = tmp / "opsloop.yml"
    config.write_text(yaml.safe_dump(policy))
    url, cleanup = database(postgres, tmp)
    try:
        settings = Settings(database_url=url, config=config, runbooks_dir=runbooks)
        services = bootstrap(settings, migrate=True, load_feeds=False)
        started = max_rss_mb()
        services.rollout_worker.executor = TimedExecutor(
            httpx.Client(limits=httpx.Limits(max_connections=64)), services.policy.actions, _Resolver(), {})
        ref = services.workitems.declare(actor="U0RESP1", title="bench rollout").ref
        began = time.perf_counter()
        services.commands.handle("/runbook", f"run bench-rollout {ref}", actor="U0RESP1")
        pinned = time.perf_counter() - began
        after_pin = max_rss_mb()
        began = time.perf_counter()
        called = 0
        while True:
            called += services.rollout_worker.work(budget=60)
            with services.db.transaction() as session:
                rollout = session.get(Rollout, 1)
                assert rollout is not None
                if rollout.state not in ("running", "pausing"):
                    break
        wall = time.perf_counter() - began
        peak = max_rss_mb()
        own = (wall - TimedExecutor.spent / concurrency) / max(called, 1) * 1000
        print(f"{services.db.engine.dialect.name}: {called:,} tenant calls, concurrency {concurrency}, "
              f"{catalog} catalog, rollout {rollout.state}")
        print(f"  pinning {tenants:,} targets at /runbook run: {pinned:.2f}s")
        print(f"  wall {wall:.1f}s ({called / wall:,.0f} calls/s); "
              f"inside HTTP calls {TimedExecutor.spent:.1f}s")
        print(f"  overhead per call: {own:.2f} ms (opsloop's own; "
              f"goal < {GOAL_MS:g} ms: {verdict(own, GOAL_MS)})")
        print(f"  peak memory: {peak:.0f} MB (max RSS; goal < {GOAL_MB:g} MB: {verdict(peak, GOAL_MB)}); "
              f"after start-up {started:.0f} MB, after pinning {after_pin:.0f} MB")
        services.db.dispose()
    finally:
        if cleanup is not None:
            admin, name = cleanup
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class _Resolver:
    def resolve(self, host: str, port: int) -> list[str]:
        return [host]


if __name__ == "__main__":
    main()
