"""Crash safety at fleet scale: a worker process is killed with SIGKILL mid-wave while two tenants' calls
are in flight; after the restart the tenants it finished are not called again, the two in flight are
`unknown` for a person (as is any tenant the worker had claimed but perhaps not yet called when the
kill landed: its claim is committed before a byte leaves), and the rest of the fleet is called, each
tenant once.

The target is a real HTTP server on 127.0.0.1 (in this process) that holds the calls of chosen tenants
open; the worker is a real `python` process running the production worker loop on the same database.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from sqlmodel import select

from bot.bootstrap import bootstrap
from bot.settings import Settings
from opsloop.rollouts import models as M
from opsloop.rollouts.models import Rollout, RolloutTarget
from tests.core.rollouts.conftest import FLEET, STARTER, catalog, tenant_ids
from tests.support import ROOT, FakeClock, QuietHandler

pytestmark = pytest.mark.slow
HELD = ("t10", "t11")  # in the third wave (t07..t26)

WORKER = """
import sys
from pathlib import Path
from bot.bootstrap import bootstrap
from bot.settings import Settings
services = bootstrap(Settings(database_url=sys.argv[1], config=Path(sys.argv[2]), runbooks_dir=Path(sys.argv[3])),
                     load_feeds=False)
print("ready", flush=True)
while True:
    services.rollout_worker.work(budget=30)
"""


class Far:
    """The target: records (tenant, Idempotency-Key); holds the calls of HELD until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.held = threading.Semaphore(0)
        self.release = threading.Event()
        far = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                tenant = self.path.split("/")[2]
                with far.lock:
                    far.calls.append((tenant, self.headers["Idempotency-Key"]))
                if tenant in HELD:
                    far.held.release()
                    far.release.wait(30)
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@pytest.fixture
def far() -> Iterator[Far]:
    found = Far()
    yield found
    found.release.set()
    found.server.shutdown()


def setup_files(tmp: Path, port: int) -> tuple[Path, Path]:
    runbooks = tmp / "runbooks"
    shutil.copytree(ROOT / "runbooks", runbooks)  # the policy's routing names them
    text = FLEET.replace("https://ops-api.internal", f"http://127.0.0.1:{port}").replace("max_errors: 1",
                                                                                           "max_errors: 0")
    (runbooks / "fleet-patch.yaml").write_text(text)
    (tmp / "accounts.yml").write_text(yaml.safe_dump(catalog()))
    policy = yaml.safe_load((ROOT / "opsloop.yml").read_text())
    policy["accounts"] = str(tmp / "accounts.yml")
    policy["actions"].update(allow_hosts=["127.0.0.1"], allow_loopback=True)
    (tmp / "opsloop.yml").write_text(yaml.safe_dump(policy))
    return runbooks, tmp / "opsloop.yml"


def test_kill_9_mid_wave_then_restart_calls_nobody_twice(tmp_path: Path, db_url: str, far: Far) -> None:
    runbooks, config = setup_files(tmp_path, far.port)
    settings = Settings(database_url=db_url, config=config, runbooks_dir=runbooks)
    clock = FakeClock(datetime.now(UTC))
    services = bootstrap(settings, clock=clock, environ={"OPS_API_TOKEN": "t0ken-for-the-crash-test"},
                         load_feeds=False)
    ref = services.workitems.declare(actor=STARTER, title="hot patch").ref
    services.commands.handle("/runbook", f"run fleet-patch {ref} release=4.2.1", actor=STARTER)
    worker = subprocess.Popen([sys.executable, "-c", WORKER, db_url, str(config), str(runbooks)], cwd=ROOT,
                              env={**os.environ, "OPS_API_TOKEN": "t0ken-for-the-crash-test"},
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for _ in HELD:  # both held calls are in flight in the worker
            assert far.held.acquire(timeout=900), "the worker never reached the held tenants"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(30)
    finally:
        if worker.poll() is None:
            worker.kill()
    far.release.set()
    before = Counter(t for t, _ in far.calls)
    with services.db.transaction() as session:
        claimed = session.exec(select(RolloutTarget).where(RolloutTarget.state == M.SENDING)).all()
        sending = {t.tenant_id for t in claimed}
        leases = [t.lease_until for t in claimed if t.lease_until is not None]
    # The dead worker's claims: the held calls, and whichever tenants it had claimed (committed before a
    # byte left) when the kill landed - sent or not, nobody can know, so they must all end `unknown`.
    assert set(HELD) <= sending
    assert set(HELD) <= set(before)
    # past every lease of the dead worker (its calls could not still be running); its leases are in real
    # time, which ran on while it worked, so the fake clock is moved past them, not by a fixed amount
    clock.advance(seconds=max(0.0, (max(leases) - clock.now()).total_seconds()) + 1)
    services.rollout_worker.work()
    calls = Counter(t for t, _ in far.calls)
    assert max(calls.values()) == 1, f"called twice: {[t for t, n in calls.items() if n > 1]}"
    keys = [k for _, k in far.calls]
    assert len(set(keys)) == len(keys)
    with services.db.transaction() as session:
        final = {t.tenant_id: t.state for t in session.exec(select(RolloutTarget))}
        rollout = session.exec(select(Rollout)).one()
    unknown = {t for t, s in final.items() if s == M.UNKNOWN}
    assert unknown == sending  # exactly the dead worker's claims: none of them called again by itself
    assert set(tenant_ids()) - unknown <= set(calls)  # everyone else called, once
    assert {final[t] for t in set(final) - unknown} == {M.SUCCEEDED}
    assert rollout.state == M.COMPLETED  # orphaned unknowns need a person but spend no error budget
    reply = services.commands.handle("/runbook", f"tenant {ref} patch t10 succeeded", actor=STARTER)
    assert "unknown → succeeded" in reply.text
    services.db.dispose()
