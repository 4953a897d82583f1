"""Helpers for tests that run a server as a process of its own (`opsloop serve`, Alertmanager)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable

import httpx
from sqlalchemy import create_engine, text

from tests.support import ROOT


def serve_env(database: str, slack_api_url: str, **extra: str) -> dict[str, str]:
    """The environment of an `opsloop serve` on the sample policy, runbooks and `database`, whose
    Slack is the mock at `slack_api_url`; `extra` adds secrets, tokens, a log level."""
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "OPSLOOP_DATABASE_URL": database,
            "OPSLOOP_CONFIG": str(ROOT / "opsloop.yml"), "OPSLOOP_RUNBOOKS_DIR": str(ROOT / "runbooks"),
            "OPSLOOP_SLACK_API_URL": slack_api_url, "SLACK_BOT_TOKEN": "xoxb-test", **extra}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rows(database: str, query: str) -> list[tuple[object, ...]]:
    """What `query` finds in `database` now, read through a connection of the test's own."""
    engine = create_engine(database)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


def wait_ready(process: subprocess.Popen[bytes], ready: Callable[[], httpx.Response], *, what: str,
               said: Callable[[], str], timeout: float = 90) -> None:
    """Until `ready()` answers 200; a process that exits first, or is not ready within `timeout`
    (a loaded CI machine starts slowly), is killed and the test fails with the end of what it said."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready().status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"{what} did not start: {said()[-800:]}")
        time.sleep(0.1)
