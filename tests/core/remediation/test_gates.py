"""Approval gates: distinct approvers, never the starter, one reject ends, expiry and changes ask again."""

from __future__ import annotations

import httpx
import pytest
import respx
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.errors import InvalidInput, PermissionDenied
from opsloop.messages import Message
from opsloop.models import AuditEvent, OutboxMessage
from opsloop.remediation.models import ApprovalRound
from tests.core.remediation.conftest import (
    ADMIN,
    API,
    APPROVER1,
    APPROVER2,
    STARTER,
    approve_twice,
    start,
    steps,
)
from tests.support import FakeClock

RESTART = f"https://{API}/services/web/restart"


def requests_posted(services: Core) -> list[Message]:
    with services.db.transaction() as s:
        rows = s.exec(select(OutboxMessage).where(col(OutboxMessage.key).like("gate-round:%"))
                      .order_by(col(OutboxMessage.id))).all()
        return [Message.from_json(r.payload["message"]) for r in rows]


def test_the_request_shows_what_will_be_called_and_who_may_approve(rem: Core) -> None:
    start(rem)
    [request] = requests_posted(rem)
    assert request.text.startswith("🔐 Approval needed on INC-1: `gate`")
    body = request.body or ""
    assert "`POST https://ops-api.internal/services/web/restart`" in body
    assert "host `ops-api.internal` · path `/services/web/restart`" in body
    assert "Bearer {{ secrets.OPS_API_TOKEN }}" in body and '"reason": "INC-1"' in body
    fields = dict(request.fields)
    assert fields["Who may approve"] == "<@U0SRE1> or <@U0SRE2> or <@U0ADMIN> (role approver)"
    assert "2 distinct approver(s), not <@U0RESP2>" in fields["Needed"]
    assert [b.action for b in request.buttons] == ["gate.approve", "gate.reject"]


def test_the_starter_never_counts_and_two_distinct_approvers_are_needed(
        rem: Core, api: respx.MockRouter) -> None:
    route = api.post(RESTART).mock(return_value=httpx.Response(202, json={"job": {"id": "j-1"}}))
    api.get(f"https://{API}/jobs/j-1").mock(return_value=httpx.Response(200))
    start(rem, actor=APPROVER1)  # an approver starts it: their approval must not count
    [request] = requests_posted(rem)
    round_id = request.buttons[0].value
    with pytest.raises(PermissionDenied, match="you started this run"):
        rem.commands.press("gate.approve", round_id, actor=APPROVER1)
    with pytest.raises(PermissionDenied, match="its approvers are role:approver"):
        rem.commands.press("gate.approve", round_id, actor=STARTER)
    rem.commands.press("gate.approve", round_id, actor=APPROVER2)
    with pytest.raises(InvalidInput, match="already approved"):
        rem.commands.press("gate.approve", round_id, actor=APPROVER2)
    assert rem.remediation.work() == 0 and not route.called  # one of two is not enough
    rem.commands.press("gate.approve", round_id, actor=ADMIN)
    assert steps(rem)["gate"] == "approved"
    assert rem.remediation.work() == 2  # restart, then follow (its url uses restart's output)
    assert route.call_count == 1
    assert steps(rem) == {"gate": "approved", "restart": "done", "follow": "done"}
    with rem.db.transaction() as s:
        denied = s.exec(select(AuditEvent).where(AuditEvent.action == "permission.denied")).all()
        assert [e.actor for e in denied] == [APPROVER1, STARTER]


def test_one_reject_ends_the_gate_and_nothing_is_called(rem: Core, api: respx.MockRouter) -> None:
    route = api.post(RESTART).mock(return_value=httpx.Response(202))
    start(rem)
    rem.commands.handle("/runbook", "approve INC-1 gate", actor=APPROVER1)
    rem.commands.handle("/runbook", "reject INC-1 gate too risky now", actor=APPROVER2)
    assert rem.remediation.work() == 0
    assert not route.called
    assert steps(rem) == {"gate": "rejected", "restart": "blocked", "follow": "blocked"}
    with rem.db.transaction() as s:
        assert s.exec(select(ApprovalRound)).one().outcome == "rejected"


def test_an_unanswered_request_expires_and_asks_again(rem: Core, clock: FakeClock) -> None:
    start(rem)
    rem.commands.handle("/runbook", "approve INC-1 gate", actor=APPROVER1)
    clock.advance(minutes=31)
    assert rem.sweeper.sweep() >= 1
    first, second = requests_posted(rem)
    assert "request #2" in second.text and "expired without enough approvals" in (second.body or "")
    assert first.buttons[0].value != second.buttons[0].value
    assert steps(rem)["gate"] == "open"
    reply = rem.commands.press("gate.approve", first.buttons[0].value, actor=APPROVER2)
    assert "was expired" in reply.text  # the old message no longer counts
    with rem.db.transaction() as s:
        gate_row_approvals = s.exec(select(AuditEvent).where(AuditEvent.action == "runbook.gate.reopened")).all()
        assert len(gate_row_approvals) == 1


def test_an_approval_not_used_in_time_lapses(rem: Core, clock: FakeClock, api: respx.MockRouter) -> None:
    route = api.post(RESTART).mock(return_value=httpx.Response(202))
    start(rem)
    approve_twice(rem)
    clock.advance(minutes=31)  # approved, but nobody ran the executor in time
    assert rem.remediation.work() == 0
    assert not route.called
    assert steps(rem)["gate"] == "open" and steps(rem)["restart"] == "waiting"
    assert "lapsed" in (requests_posted(rem)[-1].body or "")


def test_a_changed_request_invalidates_the_approval(rem: Core, api: respx.MockRouter) -> None:
    route = api.post(RESTART).mock(return_value=httpx.Response(202, json={"job": {"id": "j-1"}}))
    start(rem)
    approve_twice(rem)
    # the body carries the item's tenants: naming one changes the request after it was approved
    rem.commands.handle("/incident", "tenants INC-1 add acme", actor=STARTER)
    assert rem.remediation.work() == 0
    assert not route.called
    assert steps(rem)["gate"] == "open"
    latest = requests_posted(rem)[-1]
    assert "changed after gate was approved" in (latest.body or "") and '"tenants": "acme"' in (latest.body or "")
    approve_twice(rem)  # approving the new request lets exactly that request through
    api.get(f"https://{API}/jobs/j-1").mock(return_value=httpx.Response(200))
    assert rem.remediation.work() == 2
    assert route.call_count == 1
    assert b'"tenants": "acme"' in route.calls.last.request.content


def test_an_old_request_message_cannot_approve_a_changed_request(rem: Core) -> None:
    start(rem)
    [request] = requests_posted(rem)
    rem.commands.handle("/incident", "tenants INC-1 add acme", actor=STARTER)
    reply = rem.commands.press("gate.approve", request.buttons[0].value, actor=APPROVER1)
    assert "the request changed since that message" in reply.text
    assert steps(rem)["gate"] == "open"
    assert '"tenants": "acme"' in (requests_posted(rem)[-1].body or "")


def copies(services: Core, prefix: str) -> dict[str, OutboxMessage]:
    with services.db.transaction() as s:
        return {r.key: r for r in s.exec(select(OutboxMessage).where(col(OutboxMessage.key).startswith(prefix)))}


def test_each_approver_is_asked_by_dm_and_every_copy_shows_the_decision(rem: Core) -> None:
    start(rem)
    [round_] = copies(rem, "gate-round:").values()
    round_id = round_.key.removeprefix("gate-round:")
    dms = copies(rem, f"gate-ask:{round_id}:")
    assert {m.target for m in dms.values()} == {APPROVER1, APPROVER2, ADMIN}  # named people, not the starter
    for dm in dms.values():
        message = Message.from_json(dm.payload["message"])
        assert message.text.startswith("🔐 Approval needed on INC-1: `gate`")
        assert [(b.action, b.value) for b in message.buttons] == [("gate.approve", round_id),
                                                                  ("gate.reject", round_id)]
    rem.commands.press("gate.approve", round_id, actor=APPROVER1)
    assert copies(rem, "settled:") == {}  # one of two: still asking
    rem.commands.press("gate.approve", round_id, actor=APPROVER2)
    edits = copies(rem, "settled:")
    assert {e.update_key for e in edits.values()} == {round_.key, *dms}
    for edit in edits.values():
        message = Message.from_json(edit.payload["message"])
        assert message.text == f"✅ `gate` on INC-1 was approved by <@{APPROVER1}>, <@{APPROVER2}>"
        assert message.buttons == [] and "will call" in (message.body or "")
    assert {e.lane for e in edits.values() if e.target != round_.target} == {f"chat:{p}" for p in
                                                                             (APPROVER1, APPROVER2, ADMIN)}


def test_a_rejection_and_a_lapsed_request_settle_their_copies(rem: Core, clock: FakeClock) -> None:
    start(rem)
    clock.advance(minutes=31)  # the round expires unanswered: asked again
    rem.sweeper.sweep()
    first, second = sorted(copies(rem, "gate-round:"), key=lambda k: int(k.split(":")[1]))
    lapsed = [Message.from_json(e.payload["message"]).text for e in copies(rem, "settled:").values()]
    assert len(lapsed) == 4 and all(t.startswith("⌛ This request for `gate` on INC-1 no longer holds") for t in lapsed)
    rem.commands.handle("/runbook", "reject INC-1 gate too risky now", actor=APPROVER1)
    rejected = [Message.from_json(e.payload["message"]).text for e in copies(rem, "settled:").values()
                if e.update_key == second or (e.update_key or "").startswith(f"gate-ask:{second.split(':')[1]}:")]
    assert rejected == [f"⛔ `gate` on INC-1 was rejected by <@{APPROVER1}>: too risky now"] * 4
    assert first != second
