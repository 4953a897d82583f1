"""How fast `opsloop serve` acknowledges Slack: N signed slash commands at a given concurrency.

Starts `opsloop serve` in a subprocess (SQLite in a temporary folder, the
sample policy, a local mock of the Slack Web API), fires N signed
`/incident declare ...` commands (by default) from C concurrent clients and
prints p50 / p99 / max latency and requests per second. Latency is measured
at the client over loopback, so it is an upper bound of the server-side time,
which is read from the server's own /metrics histogram as well.

Acknowledging is faster than declaring (a declare is a transaction of about
20 ms), so the burst leaves a backlog the core works through afterwards; the
bench waits for it (`opsloop_core_pending` reaching 0) and reports how long
that took, and how many commands were answered in the acknowledgement itself.

    PYTHONPATH=src:. python bench/ack_latency.py [-n 2000] [-c 32] [--text 'help']

Target (SPEC): p99 < 100 ms at 32 concurrent requests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.serving import free_port, start_opsloop  # noqa: E402 - after the path is set
from tests.bot.mock_slack import MockSlack  # noqa: E402
from tests.bot.slack_requests import FORM, command_body, sign  # noqa: E402

SECRET = "bench-signing-secret"
USER = "U0RESP1"  # a responder in the sample policy


async def fire(
    port: int, mock: MockSlack, total: int, concurrency: int, text: str, *, warmup: int = 0
) -> tuple[list[float], float, int]:
    """Send `warmup` unmeasured `help` commands, then `total` measured ones, over the same
    `concurrency` kept-alive connections (as Slack does: opening connections is not acking)."""
    latencies: list[float] = []
    failures = inline = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(n)
    # aiohttp, not httpx, as the load generator: httpx's async client spent ~7 ms of CPU per request
    # here (measured on GET /healthz: 110 req/s with httpx, 3,100 req/s with aiohttp), so it
    # measured itself rather than the server
    url = f"http://127.0.0.1:{port}/slack/events"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as client:

        async def worker(jobs: asyncio.Queue[int], text: str, record: bool) -> None:
            nonlocal failures, inline
            while not jobs.empty():
                n = jobs.get_nowait()
                body = command_body("/incident", text.replace("{n}", str(n)), user=USER, respond_to=mock.url)
                headers = {"Content-Type": FORM, **sign(body, SECRET)}
                started = time.perf_counter()
                async with client.post(url, data=body.encode(), headers=headers) as answer:
                    content = await answer.read()
                if record:
                    latencies.append((time.perf_counter() - started) * 1000)
                    inline += bool(content)
                if answer.status != 200:
                    failures += 1

        warm: asyncio.Queue[int] = asyncio.Queue()
        for n in range(warmup):
            warm.put_nowait(n)
        await asyncio.gather(*(worker(warm, "help", False) for _ in range(concurrency)))
        started = time.perf_counter()
        await asyncio.gather(*(worker(queue, text, True) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if failures:
        print(f"!! {failures} requests were not answered 200")
    return latencies, elapsed, inline


def metric(port: int, name: str) -> float:
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise SystemExit(f"/metrics has no {name}")


def drain_seconds(port: int, limit: float = 600) -> float:
    """Seconds until the core has worked through what the burst left queued."""
    started = time.monotonic()
    while metric(port, "opsloop_core_pending") > 0:
        if time.monotonic() - started > limit:
            raise SystemExit(f"the core still had work queued after {limit:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


def server_histogram(port: int) -> dict[float, float]:
    """Cumulative counts of opsloop_http_request_duration_seconds for /slack/events, by bucket (ms)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=120).text
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("opsloop_http_request_duration_seconds_bucket") and '"/slack/events"' in line:
            le = line.split('le="')[1].split('"')[0]
            buckets[float("inf") if le == "+Inf" else float(le) * 1000] = float(line.rsplit(" ", 1)[1])
    return buckets


def bucket_quantile(cumulative: dict[float, float], q: float) -> float:
    total = cumulative.get(float("inf"), 0)
    for le in sorted(cumulative):
        if total and cumulative[le] >= q * total:
            return le
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--text", default='declare "bench incident {n}" sev3',
                        help="what follows /incident ({n}: the request number)")
    args = parser.parse_args()
    mock = MockSlack().start()
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        server = start_opsloop(port, Path(folder), slack_api_url=mock.api_url,
                               extra_env={"SLACK_SIGNING_SECRET": SECRET})
        try:
            asyncio.run(fire(port, mock, 50, 8, "help"))  # warm up the server: imports, auth.test
            before = server_histogram(port)
            latencies, elapsed, inline = asyncio.run(fire(
                port, mock, args.requests, args.concurrency, args.text, warmup=4 * args.concurrency))
            after = server_histogram(port)
            drained = drain_seconds(port)
        finally:
            server.terminate()
            server.wait(timeout=30)
            mock.stop()
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"/incident {args.text!r}: {len(latencies)} signed requests, concurrency {args.concurrency}")
    print(f"ack latency ms: p50 {statistics.median(ordered):.1f}  p99 {p99:.1f}  max {ordered[-1]:.1f}")
    server_side = {le: after[le] - before.get(le, 0) for le in after}
    print("server-side (from /metrics, bucket upper bounds): "
          f"p50 <= {bucket_quantile(server_side, 0.5)} ms  p99 <= {bucket_quantile(server_side, 0.99)} ms")
    print(f"throughput: {len(latencies) / elapsed:.0f} req/s over {elapsed:.1f} s")
    print(f"answered in the acknowledgement itself: {inline} of {len(latencies)}; "
          "the rest through response_url")
    print(f"core backlog worked off {drained:.1f} s after the last acknowledgement "
          f"({len(latencies) / (elapsed + drained):.0f} commands/s end to end)")
    print(f"target p99 < 100 ms: {'met' if p99 < 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
