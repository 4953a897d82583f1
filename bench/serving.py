"""Starting `opsloop serve` for a benchmark: a free port, the sample policy, a mock Slack."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def reset_postgres(url: str) -> str:
    """Empty the bench's scratch PostgreSQL database (its public schema is dropped); the URL for psycopg."""
    from sqlalchemy import create_engine, text
    url = url.replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_opsloop(port: int, folder: Path, *, slack_api_url: str, database: str | None = None,
                  extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`opsloop serve` on `port` (SQLite in `folder` unless `database`), once it answers /healthz."""
    database = database or f"sqlite:///{folder / 'bench.db'}"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "OPSLOOP_DATABASE_URL": database,
           "OPSLOOP_CONFIG": str(ROOT / "opsloop.yml"), "OPSLOOP_RUNBOOKS_DIR": str(ROOT / "runbooks"),
           "OPSLOOP_SLACK_API_URL": slack_api_url, "SLACK_BOT_TOKEN": "xoxb-bench",
           "OPSLOOP_LOG_LEVEL": "ERROR", **(extra_env or {})}
    if database.startswith("postgresql"):
        subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade"], env=env, cwd=folder, check=True)
    server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port)], env=env,
                              cwd=folder)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("opsloop serve did not start within 30 s")


def family(pid: int) -> list[int]:
    """`pid` and its descendants (`opsloop serve` is two processes: the edge and the core)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        found.append(queue.pop())
        queue += parents.get(found[-1], [])
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and its descendants have used, from /proc."""
    total = 0.0
    for member in family(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def settle(pid: int, *, window: float = 0.25, idle: float = 0.1, timeout: float = 20.0) -> float:
    """Wait until a freshly started server has done its start-up work (a due digest rendered and
    posted, timers swept): until it uses under `idle` of a core over `window` seconds. Returns
    the seconds waited, so a benchmark measures the work it sends, not the start-up's."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds(pid)
        time.sleep(window)
        if cpu_seconds(pid) - before < idle * window:
            break
    return time.monotonic() - started


MEMORY_GOAL_MB = 250


def resident_mb(pid: int) -> tuple[float, float, float, int]:
    """Memory of a process and its descendants in MB, from /proc (psutil is not a dependency):
    (PSS, the sum of VmRSS, the sum of VmHWM, how many processes). PSS (proportional set size)
    counts a page shared by n processes as 1/n in each, so the core process, forked from the
    server and sharing most of its pages, is counted once; the sums of RSS count shared pages
    in every process and overstate."""
    pss = rss = peak = 0.0
    members = family(pid)
    for member in members:
        try:
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) / 1024  # kB
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                name, _, value = line.partition(":")
                if name == "VmRSS":
                    rss += int(value.split()[0]) / 1024
                elif name == "VmHWM":
                    peak += int(value.split()[0]) / 1024
        except OSError:
            continue
    return pss, rss, peak, len(members)


def memory_line(pid: int, when: str) -> str:
    pss, rss, peak, processes = resident_mb(pid)
    met = "met" if pss < MEMORY_GOAL_MB else "NOT met"
    return (f"memory of opsloop serve {when}, {processes} processes: {pss:.0f} MB PSS "
            f"(resident summed over the processes {rss:.0f} MB, peaks summed {peak:.0f} MB); "
            f"goal < {MEMORY_GOAL_MB} MB: {met}")
