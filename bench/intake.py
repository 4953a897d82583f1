"""Alert storm against a running `opsloop serve`: N alerts in G groups from S concurrent senders.

Starts `opsloop serve` in a subprocess (SQLite in a temporary folder, or
`--database URL`; the sample policy; a local mock of the Slack Web API),
sends Alertmanager webhooks (each carrying `--per-request` alerts of one
group, as Alertmanager batches a group) from `--senders` concurrent
clients, then prints alerts accepted per second, incidents created (and any
group that got more than one: duplicates), and the Slack messages queued.

    .venv/bin/python bench/intake.py [-n 20000] [-g 50] [-s 8] [--per-request 20]

Target (SPEC): >= 1,000 alerts/s on 2 cores with zero duplicate incidents, and
Slack messages close to G (one card per incident, plus its audiences' notices).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.serving import free_port, start_opsloop  # noqa: E402 - after the path is set
from tests.bot.mock_slack import MockSlack  # noqa: E402

TOKEN = "bench-alertmanager-token"


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


async def storm(port: int, total: int, groups: int, senders: int, per_request: int) -> tuple[float, int]:
    bodies = []
    for start in range(0, total, per_request):
        group = (start // per_request) % groups
        bodies.append(payload(group, range(start, min(total, start + per_request))))
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    failures = 0
    url = f"http://127.0.0.1:{port}/hooks/alertmanager"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=senders),
                                     timeout=aiohttp.ClientTimeout(total=120)) as client:
        async def sender() -> None:
            nonlocal failures
            while not queue.empty():
                body = queue.get_nowait()
                async with client.post(url, data=body, headers=headers) as answer:
                    await answer.read()
                    failures += answer.status != 200

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(senders)))
        return time.perf_counter() - started, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--alerts", type=int, default=20000)
    parser.add_argument("-g", "--groups", type=int, default=50)
    parser.add_argument("-s", "--senders", type=int, default=8)
    parser.add_argument("--per-request", type=int, default=20)
    parser.add_argument("--database", help="a SQLAlchemy URL (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    mock = MockSlack().start()
    with tempfile.TemporaryDirectory() as folder:
        database = args.database or f"sqlite:///{Path(folder) / 'bench.db'}"
        port = free_port()
        server = start_opsloop(port, Path(folder), slack_api_url=mock.api_url, database=database,
                               extra_env={"SLACK_SIGNING_SECRET": "bench",
                                          "OPSLOOP_TOKEN_PROMETHEUS": TOKEN})
        try:
            elapsed, failures = asyncio.run(storm(port, args.alerts, args.groups, args.senders,
                                                  args.per_request))
        finally:
            server.terminate()
            server.wait(timeout=60)
            mock.stop()
        engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as db:
            alerts = db.execute(text("SELECT count(*) FROM alerts")).scalar_one()
            titles = [row[0] for row in db.execute(text("SELECT title FROM work_items"))]
            cards = db.execute(text("SELECT count(*) FROM outbox WHERE key LIKE 'card:%'")).scalar_one()
            chat = db.execute(text("SELECT count(*) FROM outbox WHERE transport = 'chat' AND "
                                   "update_key IS NULL")).scalar_one()
            edits = db.execute(text("SELECT count(*) FROM outbox WHERE update_key IS NOT NULL "
                                    "AND status != 'superseded'")).scalar_one()
        engine.dispose()
    duplicates = sum(n - 1 for n in Counter(titles).values() if n > 1)
    print(f"storm: {args.alerts} alerts in {args.groups} groups, {args.senders} senders, "
          f"{args.per_request} alerts per request")
    print(f"accepted: {args.alerts / elapsed:,.0f} alerts/s over {elapsed:.1f} s "
          f"({failures} requests not answered 200)")
    print(f"stored: {alerts} alerts, {len(titles)} incidents, {duplicates} duplicate incidents")
    print(f"Slack: {cards} cards, {chat} new messages in all (cards, threads, notices, pages), "
          f"{edits} card edits kept after coalescing")
    met = args.alerts / elapsed >= 1000 and duplicates == 0 and alerts == args.alerts
    print(f"target >= 1,000 alerts/s and 0 duplicates: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
