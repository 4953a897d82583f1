"""A rollout over 50 tenants against a local target that fails chosen tenants: waves in order, the
error budget halts it and pages the owners, Resume continues, Roll back undoes only the tenants done."""

from __future__ import annotations

import itertools

import httpx
import pytest
from sqlmodel import col, select

from opsloop.comms.models import NoticeDraft
from opsloop.core import Core
from opsloop.errors import PermissionDenied
from opsloop.messages import Message
from opsloop.models import Account, AuditEvent, OutboxMessage
from opsloop.rollouts import models as M
from opsloop.runbooks.models import RunbookRun, RunbookStepRun
from opsloop.sla.models import SlaClock
from opsloop.table import Sources, assemble
from tests.core.remediation.conftest import SECRET, FakeResolver
from tests.core.rollouts.conftest import (
    APPROVER1,
    APPROVER2,
    STARTER,
    WAVES,
    Target,
    require_approval,
    rollout,
    start,
    states,
    tenant_ids,
)
from tests.support import FakeClock, at_once


def step_state(services: Core, step: str) -> str:
    with services.db.transaction() as s:
        return s.exec(select(RunbookStepRun.state).join(RunbookRun, col(RunbookRun.id) == col(RunbookStepRun.run_id))
                      .where(RunbookStepRun.step_id == step, RunbookRun.runbook_id == "fleet-patch")).one()


def outbox_texts(services: Core, target: str) -> list[str]:
    with services.db.transaction() as s:
        rows = s.exec(select(OutboxMessage).where(OutboxMessage.target == target).order_by(col(OutboxMessage.id)))
        return [Message.from_json(r.payload["message"]).plain() for r in rows if "message" in r.payload]


def test_every_tenant_is_called_once_wave_after_wave(fleet: Core, target: Target) -> None:
    start(fleet)
    fleet.rollout_worker.work()
    called = target.called()
    assert sorted(called) == tenant_ids()  # each of the 50 exactly once
    positions = {tenant: n for n, tenant in enumerate(called)}
    for earlier, later in itertools.pairwise(WAVES):
        assert max(positions[t] for t in earlier) < min(positions[t] for t in later)
    keys = {key for _, _, key in target.calls}
    assert len(keys) == 50 and all(k.startswith("opsloop-ro1-t") for k in keys)
    assert target.bodies["t02"] == {"release": "4.2.1", "tier": "mid-market", "item": "INC-1"}
    done = rollout(fleet)
    assert done.state == M.COMPLETED and done.waves == [1, 5, 20, 24]
    assert set(states(fleet).values()) == {M.SUCCEEDED}
    with fleet.db.transaction() as s:
        clock = s.get(SlaClock, done.clock_id)
        assert clock is not None and clock.target == "rollout" and clock.state == "met"
    texts = outbox_texts(fleet, "C0OPS")
    assert any("rollout `patch` · completed" in t and "✅ 50 succeeded" in t for t in texts)
    assert fleet.workitems.get("INC-1") is not None
    # the step is done, so the run goes on to the next one
    reply = fleet.commands.handle("/runbook", "done INC-1 verify", actor=STARTER)
    assert "verify" in reply.text


def test_the_budget_halts_it_pages_the_owners_and_resume_goes_on(fleet: Core, target: Target) -> None:
    target.fail = {"t08", "t10"}  # both in the third wave; max_errors 1 tolerates one
    start(fleet)
    fleet.rollout_worker.work()
    halted = rollout(fleet)
    assert halted.state == M.HALTED and halted.wave == 2
    by_tenant = states(fleet)
    assert by_tenant["t08"] == by_tenant["t10"] == M.FAILED
    assert all(by_tenant[t] == M.WAITING for t in WAVES[3])  # the next wave never started
    assert [t for t in WAVES[2] if by_tenant[t] == M.PENDING]  # the rest of this wave waits
    assert "2 error(s), the budget allows 1" in (halted.halted_reason or "")
    page = outbox_texts(fleet, "U0SRE1")
    assert page and "HALTED" in page[-1] and "t10" in page[-1]
    reply = fleet.commands.handle("/runbook", "status INC-1", actor=STARTER)
    assert "failed (2): t08, t10" in reply.text
    fleet.commands.handle("/runbook", "resume INC-1 patch", actor=STARTER)
    fleet.rollout_worker.work()
    assert rollout(fleet).state == M.COMPLETED
    assert sorted(target.called()) == tenant_ids()  # nobody twice, the failed ones not again
    with fleet.db.transaction() as s:
        actions = [a for a in s.exec(select(AuditEvent.action)) if a.startswith("rollout.")]
    assert "rollout.halted" in actions and "rollout.resume" in actions and "rollout.completed" in actions


def test_roll_back_calls_rollback_only_for_tenants_done(fleet: Core, target: Target) -> None:
    target.fail = {"t08", "t09"}
    start(fleet)
    fleet.rollout_worker.work()
    assert rollout(fleet).state == M.HALTED
    done = {t for t, s in states(fleet).items() if s == M.SUCCEEDED}
    fleet.commands.handle("/runbook", "rollback INC-1 patch", actor=STARTER)
    fleet.rollout_worker.work()
    assert sorted(target.called("unpatch")) == sorted(done)
    assert "t08" not in target.called("unpatch") and "t50" not in target.called("unpatch")
    final = states(fleet)
    assert {final[t] for t in done} == {M.ROLLED}
    assert final["t08"] == final["t09"] == M.FAILED and final["t50"] == M.SKIPPED
    assert rollout(fleet).state == M.ROLLED_BACK
    assert step_state(fleet, "patch") == "blocked" and step_state(fleet, "verify") == "blocked"


def test_abort_and_rollback_need_the_right_role(fleet: Core, target: Target) -> None:
    target.fail = {"t01"}  # the canary fails: one error is within the budget, the rollout goes on
    start(fleet)
    fleet.rollout_worker.work()
    assert rollout(fleet).state == M.COMPLETED
    reply = fleet.commands.handle("/runbook", "status INC-1", actor=STARTER)
    assert "failed (1): t01" in reply.text


def test_a_wave_waits_for_approval_bound_to_its_requests(fleet: Core, target: Target,
                                                          fleet_dir: tuple, clock: FakeClock) -> None:
    require_approval(fleet_dir, "{percent: 10}")
    start(fleet, actor=APPROVER1)
    fleet.rollout_worker.work()
    assert target.called() == ["t01"]  # the canary, then the second wave waits
    assert rollout(fleet).state == M.APPROVAL
    with pytest.raises(PermissionDenied, match="you started this run"):  # the starter never counts
        fleet.commands.handle("/runbook", "approve INC-1 patch", actor=APPROVER1)
    with pytest.raises(PermissionDenied, match="its approvers are role:approver"):
        fleet.commands.handle("/runbook", "approve INC-1 patch", actor=STARTER)
    reply = fleet.commands.handle("/runbook", "approve INC-1 patch", actor=APPROVER2)
    assert "starts" in reply.text
    fleet.rollout_worker.work()
    assert sorted(target.called()) == tenant_ids()
    with fleet.db.transaction() as s:
        asked = s.exec(select(AuditEvent).where(AuditEvent.action == "rollout.wave.approval")).one()
        approved = s.exec(select(AuditEvent).where(AuditEvent.action == "rollout.approve")).one()
    assert asked.after["tenants"] == WAVES[1] and approved.actor == APPROVER2


def test_targets_are_chosen_when_the_run_starts_and_pinned(fleet: Core, target: Target,
                                                           fleet_dir: tuple, clock: FakeClock) -> None:
    runbooks, _ = fleet_dir
    text = (runbooks / "fleet-patch.yaml").read_text()
    text = text.replace("select: {exclude: [acme, globex, initech]}",
                        "select: {tier: [smb, enterprise], region: eu, exclude: [t02]}")
    text = text.replace("order_by: id", "order_by: tier").replace("version: 1.0.0", "version: 1.2.0")
    (runbooks / "fleet-patch.yaml").write_text(text)
    # the first step waits for a person, so the rollout opens later than the run starts
    text = text.replace("steps:\n", "steps:\n  - id: prepare\n    type: manual\n    title: Prepare\n")
    (runbooks / "fleet-patch.yaml").write_text(text.replace("version: 1.2.0", "version: 1.3.0"))
    start(fleet)
    with fleet.db.transaction() as s:  # a tenant that joins the catalog after the start is not called
        s.add(Account(id="t99", name="Late", tier="smb", region="eu"))
    fleet.commands.handle("/runbook", "done INC-1 prepare", actor=STARTER)
    fleet.rollout_worker.work()
    called = target.called()
    # eu is every odd index (t02, t04 ...); smb and enterprise are indexes 0 and 2 mod 3; t02 excluded
    expected = [t for i, t in enumerate(tenant_ids()) if i % 2 == 1 and i % 3 in (0, 2) and t != "t02"]
    assert sorted(called) == sorted(expected) and "t99" not in called
    in_order = list(states(fleet))  # by position
    tiers = [target.bodies[t]["tier"] for t in in_order]
    assert tiers == sorted(tiers, key=["smb", "enterprise"].index)  # smb first, then enterprise
    assert in_order == sorted(in_order, key=lambda t: (tiers[in_order.index(t)] == "enterprise", t))


def send_drafts(services: Core) -> None:
    """A commander (allowed notice.approve) presses Send on every customer draft in review."""
    with services.db.transaction() as s:
        drafts = s.exec(select(NoticeDraft).where(NoticeDraft.status == "pending").order_by(col(NoticeDraft.id)))
        ids = [d.id for d in drafts]
    for draft_id in ids:
        services.commands.press("notice.send", str(draft_id), actor="U0RESP1")


def test_each_tenants_customers_hear_when_its_wave_starts_and_is_done(fleet: Core, target: Target) -> None:
    target.fail = {"t03"}
    start(fleet)
    send_drafts(fleet)  # the canary's start: sent before its wave runs
    fleet.rollout_worker.work()
    send_drafts(fleet)  # the other waves ran before anyone sent their start: only what is still true goes
    with fleet.db.transaction() as s:
        mails = list(s.exec(select(OutboxMessage).where(OutboxMessage.transport == "email")))
    by_tenant: dict[str, list[str]] = {}
    for mail in mails:
        tenant = mail.target.removeprefix("ops@").removesuffix(".example")
        by_tenant.setdefault(tenant, []).append(mail.payload["subject"])
        body = mail.payload["body"]
        assert f"Tenant {tenant} team" in body  # its own name, and nobody else's
        assert not [t for t in tenant_ids() if t != tenant and f"Tenant {t}" in body]
        assert "CVE" not in body and "INC-1" not in body  # no internal words
    assert sorted(by_tenant) == tenant_ids()
    assert by_tenant["t03"] == ["Maintenance on your service is starting"]  # failed: no "done"
    assert by_tenant["t01"] == ["Maintenance on your service is starting", "Maintenance on your service is done"]
    assert by_tenant["t04"] == ["Maintenance on your service is done"]  # its start was stale by the Send


def test_two_replicas_call_each_tenant_once(fleet: Core, target: Target, db_url: str,
                                            fleet_dir: tuple, clock: FakeClock) -> None:
    runbooks, config = fleet_dir
    other = assemble(Sources(database_url=db_url, config=config, runbooks_dir=runbooks), clock=clock,
                     http_client=httpx.Client(), resolver=FakeResolver(), environ={"OPS_API_TOKEN": SECRET},
                     sleep=lambda _: None, load_feeds=False)
    try:
        start(fleet)
        at_once([fleet.rollout_worker.work, other.rollout_worker.work])
        at_once([fleet.rollout_worker.work, other.rollout_worker.work])  # whatever one left, the other takes
    finally:
        other.db.dispose()
    assert sorted(target.called()) == tenant_ids()  # 50 tenants, 50 calls, whichever replica made them
    assert rollout(fleet).state == M.COMPLETED
