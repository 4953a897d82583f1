"""The evidence bundle lists the runbook versions used, their approvals, and remediation with its approvers."""

from __future__ import annotations

import json
import zipfile
from datetime import timedelta
from pathlib import Path

import httpx
import respx

from opsloop.compliance import bundle, bundle_check
from opsloop.compliance.checkpoints import Checkpoints
from opsloop.compliance.signing import Signer, generate
from opsloop.core import Core
from tests.core.remediation.conftest import API, APPROVER1, APPROVER2, SECRET, STARTER, approve_twice, start
from tests.support import FakeClock


def test_the_bundle_shows_what_ran_who_approved_it_and_what_was_called(
        rem: Core, api: respx.MockRouter, clock: FakeClock, tmp_path: Path) -> None:
    api.post(f"https://{API}/services/web/restart").mock(return_value=httpx.Response(202, json={"job": {"id": 9}}))
    api.get(f"https://{API}/jobs/9").mock(return_value=httpx.Response(200))
    signer = Signer.load(generate(tmp_path / "keys")[0])
    since = clock.now()
    ref = start(rem)
    approve_twice(rem)
    rem.remediation.work()
    Checkpoints(rem.db, rem.policy, clock, signer).take(queue=False)
    out = tmp_path / "evidence.zip"
    with rem.db.snapshot() as session:
        summary = bundle.build(session, since=since, until=clock.now() + timedelta(seconds=1), out=out,
                               signer=signer, keys=[signer.public], generated_at=clock.now())
    assert (summary.runs, summary.calls, summary.checkpoints) == (2, 2, 1)  # the routed runbook, and remedy
    with zipfile.ZipFile(out) as archive:
        read = {name.removeprefix("evidence/"): archive.read(name) for name in archive.namelist()}
    versions = json.loads(read["runbook-versions.json"])
    assert [(v["runbook"], v["version"], v["runs"]) for v in versions] == [("generic-incident", "1.0.0", 1),
                                                                           ("remedy", "1.0.0", 1)]
    assert read[versions[1]["file"]].startswith(b"schema_version: 1\nid: remedy")
    [run] = [json.loads(line) for line in read["runbook-runs.jsonl"].splitlines() if b'"remedy"' in line]
    gate = next(s for s in run["steps"] if s["step"] == "gate")
    assert (run["item"], run["started_by"]) == (ref, STARTER)
    assert [a["by"] for a in gate["approvals"]] == [APPROVER1, APPROVER2]
    calls = [json.loads(line) for line in read["remediation.jsonl"].splitlines()]
    restart = next(c for c in calls if c["step"] == "restart")
    assert restart["state"] == "succeeded" and restart["status"] == 202
    assert [(a["gate"], a["by"]) for a in restart["approved_by"]] == [("gate", APPROVER1), ("gate", APPROVER2)]
    assert SECRET not in b"".join(read.values()).decode(errors="replace")  # secrets stay names
    roles = [json.loads(line) for line in read["roles.jsonl"].splitlines()]
    assert roles == []  # no start was recorded in this test (serve, socket and shell record theirs)
    report = bundle_check.check(out, [signer.public])
    assert report.ok and report.cover is not None and report.events == summary.events, report.problems
