"""Core with the remediation executor pointed at respx, a fake resolver and a known secret."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
import yaml
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.remediation.models import RemediationCall
from opsloop.runbooks.models import RunbookRun, RunbookStepRun
from opsloop.table import Sources, assemble
from tests.support import ROOT, FakeClock

SECRET = "s3cr3t-Tok3n-value-7731"
API = "10.20.30.40"  # where ops-api.internal resolves (the call is pinned to it)
STARTER, APPROVER1, APPROVER2, ADMIN = "U0RESP2", "U0SRE1", "U0SRE2", "U0ADMIN"

REMEDY = """schema_version: 1
id: remedy
version: 1.0.0
title: Restart with approval
owners: [U0SRE1]
inputs:
  service: {type: string, pattern: "^[a-z-]+$", required: true}
steps:
  - id: gate
    type: approval
    approvers: role:approver
    min_approvals: 2
    expires_after: 30m
  - id: restart
    type: http
    request:
      method: POST
      url: "https://ops-api.internal/services/{{ inputs.service }}/restart"
      headers: {Authorization: "Bearer {{ secrets.OPS_API_TOKEN }}"}
      json: {reason: "{{ item.id }}", tenants: "{{ item.tenants | join(',') }}"}
    expect: {status: [200, 202]}
    timeout: 20s
    retry: {attempts: 3, on_status: [429, 503]}
    outputs: {job: $.job.id}
  - id: follow
    type: http
    request:
      method: GET
      url: "https://ops-api.internal/jobs/{{ steps.restart.outputs.job }}"
      headers: {Authorization: "Bearer {{ secrets.OPS_API_TOKEN }}"}
"""

PROBE = """schema_version: 1
id: probe
version: 1.0.0
title: Probe a host
owners: [U0SRE1]
inputs:
  host: {type: string, pattern: "^[a-z0-9.-]+$", required: true}
steps:
  - id: call
    type: http
    request:
      method: POST
      url: "https://{{ inputs.host }}/probe"
      headers: {Authorization: "Bearer {{ secrets.OPS_API_TOKEN }}"}
      json: {token_check: "{{ secrets.OPS_API_TOKEN }}"}
    timeout: 5s
    retry: {attempts: 2}
"""


SCALE = """schema_version: 1
id: scale
version: 1.0.0
title: Scale a service
owners: [U0SRE1]
inputs:
  replicas: {type: integer, required: true}
  drain: {type: boolean, default: false}
  note: {type: string, default: "7"}
steps:
  - id: call
    type: http
    request:
      method: POST
      url: "https://ops-api.internal/scale"
      json: {replicas: "{{ inputs.replicas }}", drain: "{{ inputs.drain }}", note: "{{ inputs.note }}",
             label: "x{{ inputs.replicas }}", item: "{{ item.id }}"}
"""


class FakeResolver:
    def __init__(self) -> None:
        self.names = {"ops-api.internal": [API], "sneaky.internal": ["10.1.1.1", "169.254.169.254"],
                      "redirector.internal": ["10.9.9.9"]}
        self.asked: list[str] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.names.get(host, [])


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver()


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """respx in strict mode: any request without a route fails the test (nothing leaves unseen)."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


@pytest.fixture
def rem_dir(tmp_path: Path) -> tuple[Path, Path]:
    directory = tmp_path / "runbooks"
    shutil.copytree(ROOT / "runbooks", directory)
    (directory / "remedy.yaml").write_text(REMEDY)
    (directory / "probe.yaml").write_text(PROBE)
    (directory / "scale.yaml").write_text(SCALE)
    policy = yaml.safe_load((ROOT / "opsloop.yml").read_text())
    policy["actions"]["allow_hosts"] = ["ops-api.internal", "169.254.169.254", "sneaky.internal",
                                        "redirector.internal", "metadata.google.internal"]
    policy["accounts"] = str(ROOT / "accounts.yml")
    policy["roles"]["responder"].append("U0SRE1")  # an approver who can also start runs
    policy["roles"]["approver"].append("U0ADMIN")
    config = tmp_path / "opsloop.yml"
    config.write_text(yaml.safe_dump(policy))
    return directory, config


@pytest.fixture
def rem(db_url: str, rem_dir: tuple[Path, Path], clock: FakeClock, resolver: FakeResolver,
        sleeps: list[float], api: respx.MockRouter) -> Iterator[Core]:
    sources = Sources(database_url=db_url, config=rem_dir[1], runbooks_dir=rem_dir[0])
    built = assemble(sources, clock=clock, http_client=httpx.Client(), resolver=resolver,
                     environ={"OPS_API_TOKEN": SECRET}, sleep=sleeps.append)
    yield built
    built.db.dispose()


def start(services: Core, runbook: str = "remedy", actor: str = STARTER, **inputs: str) -> str:
    ref = services.workitems.declare(actor=STARTER, title="API errors").ref
    words = " ".join(f"{k}={v}" for k, v in (inputs or {"service": "web"}).items())
    services.commands.handle("/runbook", f"run {runbook} {ref} {words}", actor=actor)
    return ref


def approve_twice(services: Core, ref: str = "INC-1") -> None:
    for who in (APPROVER1, APPROVER2):
        services.commands.handle("/runbook", f"approve {ref} gate", actor=who)


def steps(services: Core, runbook: str = "remedy") -> dict[str, str]:
    with services.db.transaction() as s:
        run = s.exec(select(RunbookRun).where(RunbookRun.runbook_id == runbook)
                     .order_by(col(RunbookRun.id).desc())).first()
        assert run is not None
        return {r.step_id: r.state for r in s.exec(select(RunbookStepRun)
                                                   .where(RunbookStepRun.run_id == run.id))}


def call(services: Core, step: str = "restart") -> RemediationCall:
    with services.db.transaction() as s:
        found = s.exec(select(RemediationCall).where(RemediationCall.step_id == step)
                       .order_by(col(RemediationCall.id).desc())).first()
        assert found is not None
        return found
