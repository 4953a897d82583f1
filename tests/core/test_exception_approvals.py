"""Exceptions: approvers asked, never self-approved, decisions announced, expiry on a durable timer."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.errors import PermissionDenied
from opsloop.messages import Message
from opsloop.models import AuditEvent, OutboxMessage
from opsloop.runbooks.models import RunbookRun, RunbookStepRun
from tests.support import FakeClock

REQUESTER, APPROVER, ADMIN = "U0SRE2", "U0SRE1", "U0ADMIN"  # the requester is an approver too


def sent_to(services: Core, target: str) -> list[Message]:
    with services.db.transaction() as s:
        rows = s.exec(select(OutboxMessage).where(OutboxMessage.target == target)
                      .order_by(col(OutboxMessage.id))).all()
        return [Message.from_json(r.payload["message"]) for r in rows]


def request(services: Core, text: str = '"Skip the change freeze for the hot patch" expires:4h') -> str:
    reply = services.commands.handle("/exception", text, actor=REQUESTER)
    return reply.text.split()[1].rstrip(":")


def test_approvers_are_asked_by_dm_but_never_the_requester(services: Core) -> None:
    ref = request(services)
    assert ref == "EXC-1"
    [dm] = sent_to(services, APPROVER)
    assert "asks for an exception: EXC-1" in dm.text and "for 4h once approved" in (dm.body or "")
    assert [(b.action, b.value) for b in dm.buttons] == [("workitem.approve", "EXC-1"),
                                                         ("workitem.reject", "EXC-1")]
    assert sent_to(services, ADMIN) and not sent_to(services, REQUESTER)
    card = sent_to(services, "C0OPS")[0]
    assert [b.action for b in card.buttons][:2] == ["workitem.approve", "workitem.reject"]


def test_the_requester_cannot_approve_their_own_exception(services: Core) -> None:
    ref = request(services)
    with pytest.raises(PermissionDenied, match="you requested EXC-1"):
        services.commands.press("workitem.approve", ref, actor=REQUESTER)
    assert services.workitems.get(ref).item.state == "requested"
    with services.db.transaction() as s:
        denied = s.exec(select(AuditEvent).where(AuditEvent.action == "permission.denied")).one()
        assert denied.actor == REQUESTER and denied.after["attempted"] == "exception.approve"


def test_approval_is_announced_and_expiry_notifies_requester_and_channel(services: Core,
                                                                         clock: FakeClock) -> None:
    ref = request(services)
    services.commands.press("workitem.approve", ref, actor=APPROVER)
    told = sent_to(services, REQUESTER)[-1].text
    assert told.startswith(f"✅ {ref} was approved by <@{APPROVER}> until 2026-11-23 13:00 UTC")
    assert any(m.text == told for m in sent_to(services, "C0OPS"))
    listed = services.commands.handle("/exception", "list", actor=REQUESTER).text
    assert f"{ref} [sev4] Skip the change freeze for the hot patch — approved · 4h left" in listed
    clock.advance(hours=3, minutes=30)
    services.sweeper.sweep()
    assert services.workitems.get(ref).item.state == "approved"
    assert "30m left" in services.commands.handle("/exception", "list", actor=REQUESTER).text
    clock.advance(minutes=31)
    assert services.sweeper.sweep() >= 1
    assert services.workitems.get(ref).item.state == "expired"
    expired = sent_to(services, REQUESTER)[-1].text
    assert expired.startswith(f"⌛ {ref} expired")
    assert any(m.text == expired for m in sent_to(services, "C0OPS"))
    assert "No open exceptions" in services.commands.handle("/exception", "list", actor=REQUESTER).text
    with services.db.transaction() as s:
        actions = [e.action for e in s.exec(select(AuditEvent).where(AuditEvent.subject == ref)
                                            .order_by(col(AuditEvent.seq)))]
    assert actions[:1] == ["exception.created"] and "exception.approvers_asked" in actions
    assert actions[-1] == "exception.expire"


def test_a_rejection_is_announced_to_the_requester_and_the_channel(services: Core) -> None:
    ref = request(services)
    services.commands.handle("/exception", f"reject {ref} not during the sale", actor=APPROVER)
    told = sent_to(services, REQUESTER)[-1].text
    assert told.startswith(f"⛔ {ref} was rejected by <@{APPROVER}>") and "not during the sale" in told
    assert any(m.text == told for m in sent_to(services, "C0OPS"))


def test_without_expires_the_policy_default_applies(services: Core) -> None:
    ref = request(services, '"Run the migration in business hours"')
    services.commands.press("workitem.approve", ref, actor=APPROVER)
    item = services.workitems.get(ref).item
    assert item.expires_at is not None and (item.expires_at - services.clock.now()).total_seconds() == 86400


def settled(services: Core, prefix: str) -> dict[str, Message]:
    with services.db.transaction() as s:
        rows = s.exec(select(OutboxMessage).where(col(OutboxMessage.key).startswith(f"settled:{prefix}"))).all()
        return {r.update_key or "": Message.from_json(r.payload["message"]) for r in rows}


def gate_state(services: Core, ref: str) -> dict[str, str]:
    with services.db.transaction() as s:
        item = services.workitems.get(ref).item
        run = s.exec(select(RunbookRun).where(RunbookRun.work_item_id == item.id)).one()
        return {r.step_id: r.state for r in s.exec(select(RunbookStepRun).where(RunbookStepRun.run_id == run.id))}


def test_a_decision_edits_every_approvers_dm_and_is_the_runbooks_approval_too(services: Core) -> None:
    ref = request(services)
    assert gate_state(services, ref)["gate"] == "waiting"  # the exception's runbook: its gate waits
    asked = {m.target for m in _rows(services, f"exception-ask:{ref}:")}
    assert asked == {APPROVER, ADMIN}
    assert not any("is approved" in m.text for m in sent_to(services, "C0OPS"))  # nothing says approved yet
    services.commands.handle("/exception", f"approve {ref} looks safe", actor=APPROVER)
    edits = settled(services, f"exception-ask:{ref}:")
    assert set(edits) == {f"exception-ask:{ref}:{p}" for p in asked}
    for edit in edits.values():
        assert edit.text.startswith(f"✅ {ref} was approved by <@{APPROVER}>") and edit.buttons == []
    steps = gate_state(services, ref)
    assert steps["gate"] == "approved" and steps["announce"] == "done"  # one decision; announced after it
    with services.db.transaction() as s:
        audit = s.exec(select(AuditEvent).where(AuditEvent.action == "runbook.step.approve")).one()
    assert audit.actor == APPROVER and audit.after["with"] == ref


def test_approving_the_runbook_step_of_an_exception_approves_the_exception(services: Core) -> None:
    ref = request(services)
    for step in ("describe_risk", "time_box"):
        services.commands.handle("/runbook", f"done {ref} {step}", actor="U0RESP1")
    assert gate_state(services, ref)["gate"] == "open"
    assert services.workitems.get(ref).item.state == "requested"
    with pytest.raises(PermissionDenied):  # the requester cannot approve it through the runbook either
        services.commands.handle("/runbook", f"approve {ref} gate", actor=REQUESTER)
    reply = services.commands.handle("/runbook", f"approve {ref} gate", actor=APPROVER)
    assert reply.text == f"{ref} is now approved, and with it step `gate` of its runbook (one decision)"
    assert services.workitems.get(ref).item.state == "approved"
    assert gate_state(services, ref)["gate"] == "approved"
    # the gate's request in the thread was decided with the exception: no DM of its own, edited once decided
    assert not _rows(services, "gate-ask:")
    [thread_copy] = _rows(services, "gate-round:")
    assert settled(services, "gate-round:")[thread_copy.key].text.startswith(
        f"✅ `gate` on {ref} was approved by <@{APPROVER}>")


def test_a_rejected_exception_rejects_its_runbooks_gate(services: Core) -> None:
    ref = request(services)
    services.commands.handle("/exception", f"reject {ref} not during the sale", actor=APPROVER)
    steps = gate_state(services, ref)
    assert steps["gate"] == "rejected" and steps["announce"] == "blocked"
    assert settled(services, f"exception-ask:{ref}:")[f"exception-ask:{ref}:{APPROVER}"].text.startswith(
        f"⛔ {ref} was rejected by <@{APPROVER}>")


def _rows(services: Core, prefix: str) -> list[OutboxMessage]:
    with services.db.transaction() as s:
        return list(s.exec(select(OutboxMessage).where(col(OutboxMessage.key).startswith(prefix))))
