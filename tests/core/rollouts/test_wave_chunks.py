"""A wave's requests are rendered and stored a chunk of targets at a time (so a 10,000-tenant wave is
never all in memory): with chunks smaller than the waves, every tenant is still rendered once, in
wave order, and an approval is bound to the whole wave's requests."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from sqlmodel import select

from opsloop.core import Core
from opsloop.models import AuditEvent
from opsloop.rollouts import models as M
from opsloop.rollouts import requests as rollout_requests
from tests.core.rollouts.conftest import (
    APPROVER1,
    APPROVER2,
    WAVES,
    Target,
    require_approval,
    rollout,
    start,
    states,
    tenant_ids,
)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollout_requests, "RENDER_CHUNK", 3)  # smaller than every wave after the canary


def test_waves_rendered_in_chunks_call_every_tenant_once_in_order(fleet: Core, target: Target) -> None:
    start(fleet)
    fleet.rollout_worker.work()
    called = target.called()
    assert sorted(called) == tenant_ids()
    positions = {tenant: n for n, tenant in enumerate(called)}
    for earlier, later in itertools.pairwise(WAVES):
        assert max(positions[t] for t in earlier) < min(positions[t] for t in later)
    assert {t: b["tier"] for t, b in target.bodies.items()} == {
        t: ("smb", "mid-market", "enterprise")[(int(t[1:]) - 1) % 3] for t in tenant_ids()}
    assert rollout(fleet).state == M.COMPLETED and set(states(fleet).values()) == {M.SUCCEEDED}


def test_an_approval_is_bound_to_every_chunk_of_its_wave(fleet: Core, target: Target,
                                                          fleet_dir: tuple[Path, Path]) -> None:
    require_approval(fleet_dir, "{percent: 40}")
    start(fleet, actor=APPROVER1)
    fleet.rollout_worker.work()
    assert sorted(target.called()) == sorted(WAVES[0] + WAVES[1])
    with fleet.db.transaction() as s:
        asked = s.exec(select(AuditEvent).where(AuditEvent.action == "rollout.wave.approval")).one()
    assert asked.after["tenants"] == WAVES[2]  # all 20, in order, across 7 chunks
    reply = fleet.commands.handle("/runbook", "approve INC-1 patch", actor=APPROVER2)
    assert "starts" in reply.text  # rendered again, chunk by chunk, to the same binding
    fleet.rollout_worker.work()
    assert sorted(target.called()) == tenant_ids()
