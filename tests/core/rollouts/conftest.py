"""A fleet of 50 tenants, a rollout runbook, and the remediation executor pointed at respx (a local
target that fails the tenants a test chooses)."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import respx
import yaml
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.rollouts.models import Rollout, RolloutTarget
from opsloop.table import Sources, assemble
from tests.core.remediation.conftest import API, SECRET, FakeResolver
from tests.support import ROOT, FakeClock

STARTER, APPROVER1, APPROVER2, OWNER = "U0RESP2", "U0SRE1", "U0SRE2", "U0SRE1"
TIERS = ("smb", "mid-market", "enterprise")

FLEET = """schema_version: 1
id: fleet-patch
version: 1.0.0
title: Patch the fleet in waves
owners: [U0SRE1]
inputs:
  release: {type: string, pattern: "^[0-9.]+$", required: true, example: "4.2.1"}
steps:
  - id: patch
    type: http
    foreach: tenants
    select: {exclude: [acme, globex, initech]}
    waves: [{name: canary, size: 1}, {percent: 10}, {percent: 40}, {rest: true}]
    order_by: id
    max_concurrency: 4
    max_errors: 1
    deadline: 24h
    request:
      method: POST
      url: "https://ops-api.internal/tenants/{{ tenant.id }}/patch"
      headers: {Authorization: "Bearer {{ secrets.OPS_API_TOKEN }}"}
      json: {release: "{{ inputs.release }}", tier: "{{ tenant.tier }}", item: "{{ item.id }}"}
    rollback:
      method: POST
      url: "https://ops-api.internal/tenants/{{ tenant.id }}/unpatch"
      headers: {Authorization: "Bearer {{ secrets.OPS_API_TOKEN }}"}
  - id: verify
    type: manual
    title: "Verify {{ inputs.release }} everywhere"
"""


def tenant_ids(n: int = 50) -> list[str]:
    return [f"t{i:02d}" for i in range(1, n + 1)]


# the waves `fleet-patch` cuts the 50 tenants into: 1, 10%, 40%, the rest
WAVES = [tenant_ids()[:1], tenant_ids()[1:6], tenant_ids()[6:26], tenant_ids()[26:]]


def catalog(n: int = 50) -> list[dict[str, object]]:
    return [{"id": t, "name": f"Tenant {t}", "tier": TIERS[i % 3], "region": "eu" if i % 2 else "us",
             "arr": 1000 * i, "contact_email": f"ops@{t}.example"} for i, t in enumerate(tenant_ids(n))]


@dataclass
class Target:
    """The local far side: who was called, in which order, with which key; fails the tenants named."""

    fail: set[str] = field(default_factory=set)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, tenant, idempotency key)
    bodies: dict[str, dict[str, object]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        _, _, tenant, kind = request.url.path.split("/")
        with self.lock:
            self.calls.append((kind, tenant, request.headers["idempotency-key"]))
            if request.content:
                self.bodies[tenant] = json.loads(request.content)
        if kind == "patch" and tenant in self.fail:
            return httpx.Response(500, text=f"patch failed on {tenant}")
        return httpx.Response(200, json={"ok": True})

    def called(self, kind: str = "patch") -> list[str]:
        return [t for k, t, _ in self.calls if k == kind]


@pytest.fixture
def target() -> Target:
    return Target()


@pytest.fixture
def fleet_dir(tmp_path: Path) -> tuple[Path, Path]:
    directory = tmp_path / "runbooks"
    shutil.copytree(ROOT / "runbooks", directory)
    (directory / "fleet-patch.yaml").write_text(FLEET)
    accounts = tmp_path / "accounts.yml"
    accounts.write_text(yaml.safe_dump(catalog()))
    policy = yaml.safe_load((ROOT / "opsloop.yml").read_text())
    policy["accounts"] = str(accounts)
    policy["roles"]["responder"].append("U0SRE1")
    config = tmp_path / "opsloop.yml"
    config.write_text(yaml.safe_dump(policy))
    return directory, config


@contextmanager
def fleet_core(db_url: str, fleet_dir: tuple[Path, Path], clock: FakeClock, target: Target) -> Iterator[Core]:
    """The core on the fleet's policy and runbooks, its tenants' API answered by `target`."""
    sources = Sources(database_url=db_url, config=fleet_dir[1], runbooks_dir=fleet_dir[0])
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        router.post(url__regex=rf"https://{API}/tenants/[a-z0-9-]+/(patch|unpatch)").mock(side_effect=target)
        built = assemble(sources, clock=clock, http_client=httpx.Client(), resolver=FakeResolver(),
                         environ={"OPS_API_TOKEN": SECRET}, sleep=lambda _: None)
        yield built
        built.db.dispose()


@pytest.fixture
def fleet(db_url: str, fleet_dir: tuple[Path, Path], clock: FakeClock, target: Target) -> Iterator[Core]:
    with fleet_core(db_url, fleet_dir, clock, target) as built:
        yield built


def require_approval(fleet_dir: tuple[Path, Path], wave: str) -> None:
    """The fleet runbook's wave `wave` (as written, e.g. `{percent: 10}`) needs one approver's approval
    (version 1.1.0)."""
    path = fleet_dir[0] / "fleet-patch.yaml"
    text = path.read_text().replace(wave, wave[:-1] + ", approval: {approvers: role:approver, min_approvals: 1}}")
    path.write_text(text.replace("version: 1.0.0", "version: 1.1.0"))


def start(services: Core, runbook: str = "fleet-patch", actor: str = STARTER, **inputs: str) -> str:
    ref = services.workitems.declare(actor=STARTER, title="CVE-2026-1 hot patch").ref
    words = " ".join(f"{k}={v}" for k, v in (inputs or {"release": "4.2.1"}).items())
    services.commands.handle("/runbook", f"run {runbook} {ref} {words}", actor=actor)
    return ref


def rollout(services: Core) -> Rollout:
    with services.db.transaction() as s:
        found = s.exec(select(Rollout).order_by(col(Rollout.id).desc())).first()
        assert found is not None
        return found


def states(services: Core) -> dict[str, str]:
    with services.db.transaction() as s:
        return {t.tenant_id: t.state for t in s.exec(select(RolloutTarget).order_by(col(RolloutTarget.position)))}
