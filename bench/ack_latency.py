"""How fast `opsloop serve` acknowledges Slack, against the setup Slack's docs lead to, in one run.

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

Then the mixed run: `--help-requests` signed `/incident help` commands sent
right after the burst, while the core is still working off its declares
(the bench prints how many were pending before and after).

The peer, in the same run: sync Bolt (`slack_bolt.App`) behind the FastAPI
adapter (`slack_bolt.adapter.fastapi.SlackRequestHandler`) with a bare
`ack()`, served by uvicorn in a subprocess, gets the same declares and the
same help commands. FastAPI is not a dependency of opsloop: the peer runs in
its own environment (`--peer-env`, default /tmp/opsloop-bench-peer, created
with `python -m venv` and `pip install fastapi slack-bolt uvicorn` when
missing); if that cannot be had, the peer is skipped, saying so.

    PYTHONPATH=src:. python bench/ack_latency.py [-n 2000] [-c 32] [--text 'help'] [--no-peer]

Targets: SPEC p99 < 100 ms at 32 concurrent requests; issue 21: opsloop's p99 at
most 0.1x the peer's (floor 0.2x) for declares and for the mixed run, with at
least 10x its requests per second; opsloop serve under 250 MB (PSS summed over its
processes: the edge, the core process and their helpers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.serving import free_port, memory_line, settle, start_opsloop  # noqa: E402 - after the path is set
from tests.bot.mock_slack import MockSlack  # noqa: E402
from tests.bot.slack_requests import FORM, command_body, sign  # noqa: E402

SECRET = "bench-signing-secret"
USER = "U0RESP1"  # a responder in the sample policy
PEER_APP = """\
import os

from fastapi import FastAPI, Request
from slack_bolt import App
from slack_bolt.adapter.fastapi import SlackRequestHandler
from slack_sdk import WebClient

app = App(signing_secret=os.environ["SLACK_SIGNING_SECRET"],
          client=WebClient(token="xoxb-bench", base_url=os.environ["SLACK_API_URL"]))


@app.command("/incident")
def incident(ack):
    ack()


api = FastAPI()
handler = SlackRequestHandler(app)


@api.post("/slack/events")
async def events(req: Request):
    return await handler.handle(req)
"""


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


def peer_python(env: Path) -> Path | None:
    """The peer's interpreter (FastAPI, slack-bolt, uvicorn), making its environment if missing."""
    python = env / "bin" / "python"
    check = [str(python), "-c", "import fastapi, slack_bolt, uvicorn"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"peer: creating {env} (python -m venv; pip install fastapi slack-bolt uvicorn)")
    made = subprocess.run([sys.executable, "-m", "venv", str(env)], capture_output=True).returncode == 0 and \
        subprocess.run([str(python), "-m", "pip", "install", "-q", "fastapi", "slack-bolt", "uvicorn"],
                       capture_output=True).returncode == 0
    if made and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"peer: SKIPPED - could not make an environment with fastapi, slack-bolt and uvicorn at {env}")
    return None


def start_peer(python: Path, folder: Path, mock: MockSlack) -> tuple[subprocess.Popen[bytes], int]:
    """Bolt behind the FastAPI adapter under uvicorn, once it answers (a 401 to an unsigned POST)."""
    (folder / "peer_app.py").write_text(PEER_APP)
    port = free_port()
    env = {**os.environ, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": mock.api_url}
    process = subprocess.Popen([str(python), "-m", "uvicorn", "peer_app:api", "--port", str(port),
                                "--log-level", "warning", "--no-access-log", "--app-dir", str(folder)],
                               env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/slack/events", timeout=1)
            return process, port
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the peer (Bolt + FastAPI under uvicorn) did not start within 30 s")


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def verdict(ratio: float, goal: float, floor: float | None = None, *, at_most: bool = True) -> str:
    met = ratio <= goal if at_most else ratio >= goal
    text = f"goal {'<=' if at_most else '>='} {goal}x: {'met' if met else 'NOT met'}"
    if floor is not None:
        text += f"; floor {floor}x: {'met' if ratio <= floor else 'NOT met'}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--text", default='declare "bench incident {n}" sev3',
                        help="what follows /incident ({n}: the request number)")
    parser.add_argument("--help-requests", type=int, default=1000,
                        help="`help` commands of the mixed run, sent while the burst is worked off")
    parser.add_argument("--peer-env", type=Path, default=Path("/tmp/opsloop-bench-peer"))
    parser.add_argument("--no-peer", action="store_true", help="measure opsloop alone")
    args = parser.parse_args()
    mock = MockSlack().start()
    peer: dict[str, tuple[list[float], float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        python = None if args.no_peer else peer_python(args.peer_env)
        if python is not None:
            process, peer_port = start_peer(python, Path(folder), mock)
            try:
                asyncio.run(fire(peer_port, mock, 50, 8, "help"))
                latencies, elapsed, _ = asyncio.run(fire(
                    peer_port, mock, args.requests, args.concurrency, args.text, warmup=4 * args.concurrency))
                peer["burst"] = (latencies, elapsed)
                latencies, elapsed, _ = asyncio.run(fire(peer_port, mock, args.help_requests,
                                                         args.concurrency, "help"))
                peer["mixed"] = (latencies, elapsed)
            finally:
                process.terminate()
                process.wait(timeout=30)
        port = free_port()
        server = start_opsloop(port, Path(folder), slack_api_url=mock.api_url,
                               extra_env={"SLACK_SIGNING_SECRET": SECRET})
        try:
            settle(server.pid)  # its start-up work (a due digest) is not what is measured
            asyncio.run(fire(port, mock, 50, 8, "help"))  # warm up the server: imports, auth.test
            before = server_histogram(port)
            latencies, elapsed, inline = asyncio.run(fire(
                port, mock, args.requests, args.concurrency, args.text, warmup=4 * args.concurrency))
            after = server_histogram(port)
            pending_before = metric(port, "opsloop_core_pending")
            mixed, mixed_elapsed, _ = asyncio.run(fire(port, mock, args.help_requests, args.concurrency,
                                                       "help"))
            pending_after = metric(port, "opsloop_core_pending")
            drained = drain_seconds(port)
            memory = memory_line(server.pid, "after the declare burst")
        finally:
            server.terminate()
            server.wait(timeout=30)
            mock.stop()
    ordered = sorted(latencies)
    print(f"/incident {args.text!r}: {len(latencies)} signed requests, concurrency {args.concurrency}")
    print(f"ack latency ms: p50 {statistics.median(ordered):.1f}  p99 {p99(latencies):.1f}  "
          f"max {ordered[-1]:.1f}")
    server_side = {le: after[le] - before.get(le, 0) for le in after}
    print("server-side (from /metrics, bucket upper bounds): "
          f"p50 <= {bucket_quantile(server_side, 0.5)} ms  p99 <= {bucket_quantile(server_side, 0.99)} ms")
    print(f"throughput: {len(latencies) / elapsed:.0f} req/s over {elapsed:.1f} s")
    print(f"answered in the acknowledgement itself: {inline} of {len(latencies)}; "
          "the rest through response_url")
    print(f"mixed: {len(mixed)} `help` while the core worked off the burst "
          f"({pending_before:.0f} pending before, "
          f"{pending_after:.0f} after): p50 {statistics.median(mixed):.1f}  p99 {p99(mixed):.1f} ms, "
          f"{len(mixed) / mixed_elapsed:.0f} req/s")
    print(f"core backlog worked off {drained:.1f} s after the last `help` "
          f"({len(latencies) / (elapsed + mixed_elapsed + drained):.0f} commands/s end to end)")
    print(f"target p99 < 100 ms: {'met' if p99(latencies) < 100 else 'NOT met'}")
    print(memory)
    if not peer:
        print("peer: not measured, so no ratios")
        return
    for name, (ours, our_elapsed) in (("declares", (latencies, elapsed)), ("mixed", (mixed, mixed_elapsed))):
        theirs, their_elapsed = peer["burst" if name == "declares" else "mixed"]
        ratio = p99(ours) / p99(theirs)
        rps = (len(ours) / our_elapsed) / (len(theirs) / their_elapsed)
        print(f"peer (Bolt + FastAPI, bare ack) {name}: p99 {p99(theirs):.1f} ms, "
              f"{len(theirs) / their_elapsed:.0f} req/s")
        print(f"  ratio opsloop / peer p99: {ratio:.2f}x ({verdict(ratio, 0.1, 0.2)}); "
              f"rps: {rps:.1f}x ({verdict(rps, 10, at_most=False)})")


if __name__ == "__main__":
    main()
