"""Alert storm against `opsloop serve` and, in the same run, against Alertmanager's own intake.

Starts `opsloop serve` in a subprocess (SQLite in a temporary folder, or
`--database URL`; the sample policy; a local mock of the Slack Web API),
sends Alertmanager webhooks (each carrying `--per-request` alerts of one
group, as Alertmanager batches a group) from `--senders` concurrent
clients, then prints alerts accepted (answered: stored) per second, how long
until all were processed into incidents, incidents created (and any group
that got more than one: duplicates), the Slack messages queued and the
server's memory after the storm (PSS summed over its processes).

When `prometheus-alertmanager` is installed (`.ci/run` installs it), the
same storm (the same alerts, groups, batches and senders) is first sent to
a real Alertmanager's `POST /api/v2/alerts` (a null receiver, a temporary
storage path, clustering off), and opsloop's rate is printed as a ratio to
its rate.

    .venv/bin/python bench/intake.py [-n 4000] [-g 40] [-s 8] [--per-request 10] [--database URL]
                                     [--replicas 2]

With `--database URL --replicas 2` the storm is then sent again (to a fresh
database) to two `opsloop serve` replicas on that one PostgreSQL database,
each taking half the senders, and their rate is printed against one replica's.

Goals (issue 21): opsloop >= 1.0x Alertmanager on SQLite (floor 0.3x), >= 0.5x on
PostgreSQL (floor 0.15x); two replicas >= 1.6x one; zero duplicate incidents; at most 2 Slack
posts per group; under 250 MB (PSS, summed over the processes of one server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.serving import free_port, memory_line, reset_postgres, settle, start_opsloop  # noqa: E402 - after the path is set
from tests.bot.mock_slack import MockSlack  # noqa: E402

TOKEN = "bench-alertmanager-token"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
GOAL = {"SQLite": 1.0, "PostgreSQL": 0.5}
FLOOR = {"SQLite": 0.3, "PostgreSQL": 0.15}


def batches(total: int, groups: int, per_request: int) -> list[tuple[int, range]]:
    """The storm: (group, alert numbers) per request; consecutive requests go to different groups."""
    return [((start // per_request) % groups, range(start, min(total, start + per_request)))
            for start in range(0, total, per_request)]


def postable(group: int, alerts: range) -> bytes:
    """The same alerts as Alertmanager's API takes them (a JSON list of postable alerts)."""
    name = f"StormAlert{group}"
    return json.dumps([{
        "labels": {"alertname": name, "severity": "warning", "service": f"svc-{group}", "instance": f"i-{n}"},
        "annotations": {"summary": f"storm in group {group}"}, "startsAt": "2026-11-23T09:00:00Z",
        "generatorURL": f"http://prometheus.example/graph?g0.expr=storm{group}"} for n in alerts]).encode()


def start_alertmanager(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A real Alertmanager with a null receiver, answering on a free port once /-/ready says so."""
    config = folder / "alertmanager.yml"
    config.write_text('route: {receiver: "null", group_by: [alertname]}\nreceivers: [{name: "null"}]\n')
    port = free_port()
    process = subprocess.Popen(
        [str(ALERTMANAGER), f"--config.file={config}", f"--storage.path={folder / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("Alertmanager did not start within 30 s")


def payload(group: int, alerts: range) -> bytes:
    name = f"StormAlert{group}"
    return json.dumps({
        "version": "4", "groupKey": f'{{}}:{{alertname="{name}"}}', "status": "firing",
        "receiver": "opsloop", "groupLabels": {"alertname": name},
        "commonLabels": {"alertname": name, "severity": "warning", "service": f"svc-{group}"},
        "commonAnnotations": {"summary": f"storm in group {group}"},
        "alerts": [{"status": "firing", "labels": {"alertname": name, "instance": f"i-{n}"},
                    "annotations": {}, "startsAt": "2026-11-23T09:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z", "fingerprint": f"g{group}-a{n}"} for n in alerts],
    }).encode()


async def storm(urls: list[str], bodies: list[bytes], senders: int,
                headers: dict[str, str]) -> tuple[float, int]:
    """Send `bodies` from `senders` concurrent clients, sender i to `urls[i % len(urls)]` (replicas
    each take their share of the senders); (seconds, requests not answered 2xx)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    failures = 0
    headers = {"Content-Type": "application/json", **headers}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=senders),
                                     timeout=aiohttp.ClientTimeout(total=120)) as client:
        async def sender(url: str) -> None:
            nonlocal failures
            while not queue.empty():
                body = queue.get_nowait()
                async with client.post(url, data=body, headers=headers) as answer:
                    await answer.read()
                    failures += not 200 <= answer.status < 300

        started = time.perf_counter()
        await asyncio.gather(*(sender(urls[i % len(urls)]) for i in range(senders)))
        return time.perf_counter() - started, failures


@dataclass
class Run:
    """One storm against opsloop: its rate and what it stored."""

    rate: float
    elapsed: float
    failures: int
    memory: str
    alerts: int
    titles: list[str]
    cards: int
    chat: int
    kinds: list[str]
    edits: int
    processed: float  # seconds from the storm's start until every accepted webhook was processed


def run_opsloop(args: argparse.Namespace, folder: Path, storm_of: list[tuple[int, range]],
                replicas: int) -> Run:
    """`replicas` servers of `opsloop serve` on one database (fresh), the storm split across them."""
    mock = MockSlack().start()
    database = (reset_postgres(args.database) if args.database
                else f"sqlite:///{folder / f'bench-{replicas}.db'}")
    servers = []
    try:
        for _ in range(replicas):
            port = free_port()
            servers.append((port, start_opsloop(port, folder, slack_api_url=mock.api_url, database=database,
                                                extra_env={"SLACK_SIGNING_SECRET": "bench",
                                                           "OPSLOOP_TOKEN_PROMETHEUS": TOKEN})))
        for _, server in servers:  # the start-up's own work (a due digest ...) is not the storm's
            settle(server.pid)
        started = time.perf_counter()
        elapsed, failures = asyncio.run(storm(
            [f"http://127.0.0.1:{port}/hooks/alertmanager" for port, _ in servers],
            [payload(g, a) for g, a in storm_of], args.senders, {"Authorization": f"Bearer {TOKEN}"}))
        processed = processed_after(database, started)
        memory = memory_line(servers[0][1].pid, "after the storm")
    finally:
        for _, server in servers:
            server.terminate()
        for _, server in servers:
            server.wait(timeout=60)
        mock.stop()
    engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as db:
        alerts = db.execute(text("SELECT count(*) FROM alerts")).scalar_one()
        titles = [row[0] for row in db.execute(text("SELECT title FROM work_items"))]
        cards = db.execute(text("SELECT count(*) FROM outbox WHERE key LIKE 'card:%'")).scalar_one()
        chat = db.execute(text("SELECT count(*) FROM outbox WHERE transport = 'chat' AND "
                               "update_key IS NULL")).scalar_one()
        kinds = [row[0] for row in db.execute(text("SELECT key FROM outbox WHERE transport = 'chat' AND "
                                                    "update_key IS NULL"))]
        edits = db.execute(text("SELECT count(*) FROM outbox WHERE update_key IS NOT NULL "
                                "AND status != 'superseded'")).scalar_one()
    engine.dispose()
    return Run(args.alerts / elapsed, elapsed, failures, memory, alerts, titles, cards, chat, kinds, edits,
               processed)


def processed_after(database: str, started: float, timeout: float = 300) -> float:
    """Seconds from the storm's start until the servers had processed every accepted webhook
    (answers mean "stored"; the inbox worker turns them into incidents right after)."""
    engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
    try:
        while time.perf_counter() - started < timeout:
            with engine.connect() as db:
                if db.execute(text("SELECT count(*) FROM intake_inbox")).scalar_one() == 0:
                    return time.perf_counter() - started
            time.sleep(0.02)
        raise SystemExit(f"the accepted webhooks were not processed within {timeout:.0f} s")
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--alerts", type=int, default=4000)
    parser.add_argument("-g", "--groups", type=int, default=40)
    parser.add_argument("-s", "--senders", type=int, default=8)
    parser.add_argument("--per-request", type=int, default=10)
    parser.add_argument("--replicas", type=int, choices=(1, 2), default=1,
                        help="2: also run two `opsloop serve` replicas on the --database (PostgreSQL), "
                             "each taking half the senders, and print their rate against one replica's")
    parser.add_argument("--database", help="a SQLAlchemy URL of a scratch PostgreSQL database, its public "
                                           "schema dropped first (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    store = "PostgreSQL" if args.database else "SQLite"
    if args.replicas == 2 and not args.database:
        parser.error("--replicas 2 needs --database (replicas share a PostgreSQL database)")
    storm_of = batches(args.alerts, args.groups, args.per_request)
    print(f"storm: {args.alerts} alerts in {args.groups} groups, {args.senders} senders, "
          f"{args.per_request} alerts per request; opsloop on {store}")
    peer_rate: float | None = None
    with tempfile.TemporaryDirectory() as folder:
        if ALERTMANAGER is None:
            print("Alertmanager: not installed (apt-get install prometheus-alertmanager; .ci/run does), "
                  "so no ratio is printed")
        else:
            am, am_port = start_alertmanager(Path(folder))
            try:
                elapsed, failures = asyncio.run(storm(
                    [f"http://127.0.0.1:{am_port}/api/v2/alerts"], [postable(g, a) for g, a in storm_of],
                    args.senders, {}))
            finally:
                am.terminate()
                am.wait(timeout=30)
            peer_rate = args.alerts / elapsed
            print(f"Alertmanager ({ALERTMANAGER}) POST /api/v2/alerts: {peer_rate:,.0f} alerts/s over "
                  f"{elapsed:.2f} s ({failures} requests not answered 2xx)")
        one = run_opsloop(args, Path(folder), storm_of, 1)
        two = run_opsloop(args, Path(folder), storm_of, 2) if args.replicas == 2 else None
    report(args, one, "")
    if peer_rate is not None:
        ratio = one.rate / peer_rate
        print(f"ratio opsloop / Alertmanager: {ratio:.2f}x; goal >= {GOAL[store]}x on {store}: "
              f"{'met' if ratio >= GOAL[store] else 'NOT met'}; floor {FLOOR[store]}x: "
              f"{'met' if ratio >= FLOOR[store] else 'NOT met'}")
    if two is not None:
        report(args, two, " (two replicas, each taking half the senders)")
        scale = two.rate / one.rate
        print(f"two replicas / one: {scale:.2f}x (goal >= 1.6x): {'met' if scale >= 1.6 else 'NOT met'}")


def report(args: argparse.Namespace, run: Run, what: str) -> None:
    duplicates = sum(n - 1 for n in Counter(run.titles).values() if n > 1)
    print(f"opsloop POST /hooks/alertmanager{what}: {run.rate:,.0f} alerts/s over {run.elapsed:.2f} s "
          f"({run.failures} requests not answered 200)")
    print(f"  processed (incidents opened, every alert stored) {run.processed:.2f} s after the storm began: "
          f"{args.alerts / run.processed:,.0f} alerts/s end to end")
    print(f"stored: {run.alerts} alerts, {len(run.titles)} incidents, {duplicates} duplicate incidents "
          f"(must be 0): {'met' if duplicates == 0 and run.alerts == args.alerts else 'NOT met'}")
    posts = run.chat / args.groups
    print(f"Slack: {run.cards} cards, {run.chat} new messages in all ({posts:.2f} per group; goal <= 2: "
          f"{'met' if posts <= 2 else 'NOT met'}), {run.edits} card edits kept after coalescing")
    print("  new messages by kind: " + ", ".join(
        f"{k} {v}" for k, v in Counter(key.split(":")[0] for key in run.kinds).most_common()))
    print(run.memory)


if __name__ == "__main__":
    main()
