"""Runs on work items: pinned, checked, role-checked, audited, shown as a checklist."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import col, select

from opsloop import audit
from opsloop.core import Core
from opsloop.errors import DomainError, IllegalTransition, InvalidInput, NotFound, PermissionDenied
from opsloop.messages import Message
from opsloop.models import AuditEvent, OutboxMessage
from opsloop.runbooks.models import RunbookRun, RunbookSnapshot, RunbookStepRun
from opsloop.runbooks.runs import Runbooks

STARTER, RESPONDER, APPROVER1, APPROVER2, STRANGER = "U0RESP2", "U0RESP1", "U0SRE1", "U0SRE2", "U0NOBODY"


def declare(services: Core, title: str = "API errors", **labels: str) -> str:
    return services.workitems.declare(actor=STARTER, title=title, labels=labels or None).ref


def states(services: Core, ref: str = "INC-1", runbook: str = "drill") -> dict[str, str]:
    with services.db.transaction() as s:
        run = s.exec(select(RunbookRun).where(RunbookRun.runbook_id == runbook)
                     .order_by(col(RunbookRun.id).desc())).first()
        assert run is not None
        rows = s.exec(select(RunbookStepRun).where(RunbookStepRun.run_id == run.id)).all()
        return {r.step_id: r.state for r in rows}


def run_id(services: Core, runbook: str = "drill") -> int:
    with services.db.transaction() as s:
        run = s.exec(select(RunbookRun).where(RunbookRun.runbook_id == runbook)
                     .order_by(col(RunbookRun.id).desc())).first()
        assert run is not None and run.id is not None
        return run.id


def checklist(services: Core, rid: int) -> Message:
    with services.db.transaction() as s:
        rows = s.exec(select(OutboxMessage).where(
            (OutboxMessage.key == f"runbook-run:{rid}") | (OutboxMessage.update_key == f"runbook-run:{rid}"))
            .order_by(col(OutboxMessage.id))).all()
    return Message.from_json(rows[-1].payload["message"])


def card_fields(services: Core, ref: str = "INC-1") -> dict[str, str]:
    """The card's fields; of several runs, the newest one's line."""
    return dict(reversed(services.cards.of(ref).fields))


def test_a_run_starts_from_the_file_and_shows_a_checklist_under_the_card(
        rb_services: Core, runbooks: Runbooks) -> None:
    ref = declare(rb_services)
    reply = rb_services.commands.handle("/runbook", f"run drill {ref} service=web", actor=STARTER)
    assert "Started runbook drill on INC-1" in reply.text
    assert states(rb_services) == {"check": "open", "gate": "waiting", "restart": "waiting",
                                   "tell": "waiting", "never": "skipped"}
    rid = run_id(rb_services)
    message = checklist(rb_services, rid)
    assert "Restart drill" in message.text and "1/5 steps" in message.text
    assert "Check web dashboards" in (message.body or "")
    assert [(b.label, b.action, b.value) for b in message.buttons] == [
        ("Done: check", "runbook.done", f"{rid}:check"), ("Skip: check", "runbook.skip", f"{rid}:check")]
    with rb_services.db.transaction() as s:
        first = s.exec(select(OutboxMessage).where(OutboxMessage.key == f"runbook-run:{rid}")).one()
        assert first.thread_key == "card:INC-1"
    assert card_fields(rb_services)["Runbook"].startswith("drill 1.0.0 · 1/5 steps")


def test_inputs_are_checked_before_anything_starts(rb_services: Core) -> None:
    ref = declare(rb_services)
    for text, error in [(f"run drill {ref}", "missing input service=… matching"),
                        (f"run drill {ref} service=Web!", "service: 'Web!' does not match"),
                        (f"run drill {ref} service=web colour=red", "unknown input 'colour'"),
                        ("run nope INC-1", "no runbook 'nope'")]:
        with pytest.raises((InvalidInput, NotFound), match=error):
            rb_services.commands.handle("/runbook", text, actor=STARTER)
    with rb_services.db.transaction() as s:
        assert s.exec(select(RunbookRun).where(RunbookRun.runbook_id == "drill")).all() == []
    reply = rb_services.commands.handle("/runbook", f"run drill {ref} service=web --dry-run", actor=STARTER)
    assert reply.text.startswith("dry run: inputs are valid")


def test_checklist_buttons_advance_steps_role_checked_and_audited(rb_services: Core) -> None:
    ref = declare(rb_services)
    rb_services.commands.handle("/runbook", f"run drill {ref} service=web", actor=STARTER)
    rid = run_id(rb_services)
    press = rb_services.commands.press
    with pytest.raises(PermissionDenied, match="needs the role responder, commander, csm or admin"):
        press("runbook.done", f"{rid}:check", actor=STRANGER)
    with pytest.raises(IllegalTransition, match="gate is an approval"):
        press("runbook.done", f"{rid}:gate", actor=RESPONDER)
    press("runbook.done", f"{rid}:check", actor=RESPONDER)
    assert states(rb_services)["gate"] == "open"
    with pytest.raises(IllegalTransition, match="step check is done; it cannot be done now"):
        press("runbook.done", f"{rid}:check", actor=RESPONDER)
    buttons = [b.label for b in checklist(rb_services, rid).buttons]
    assert buttons == ["Approve: gate", "Reject: gate"]
    assert card_fields(rb_services)["Runbook"].startswith("drill 1.0.0 · 2/5 steps")
    with rb_services.db.transaction() as s:
        events = s.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
        actions = [(e.actor, e.action, e.subject) for e in events if e.action.startswith(("runbook", "perm"))]
        assert (STRANGER, "permission.denied", f"runbook-run:{rid}") in actions
        done = [e for e in events if e.action == "runbook.step.done"]
        assert [(e.actor, e.subject, e.before, e.after) for e in done] == [
            (RESPONDER, "INC-1", {"run": rid, "step": "check", "state": "open"},
             {"run": rid, "step": "check", "state": "done"})]
        assert audit.verify(s).ok


def test_approvals_need_distinct_allowed_people_and_never_the_starter(rb_services: Core) -> None:
    ref = declare(rb_services)
    rb_services.commands.handle("/runbook", f"run drill {ref} service=web", actor=STARTER)
    rid = run_id(rb_services)
    rb_services.commands.handle("/runbook", f"done {ref} check", actor=STARTER)
    press = rb_services.commands.press
    with pytest.raises(PermissionDenied, match="its approvers are role:approver"):
        press("runbook.approve", f"{rid}:gate", actor=RESPONDER)
    rb_services.policy.roles["approver"].append(STARTER)  # even an approver cannot approve their own run
    try:
        with pytest.raises(PermissionDenied, match="you started this run"):
            press("runbook.approve", f"{rid}:gate", actor=STARTER)
    finally:
        rb_services.policy.roles["approver"].remove(STARTER)
    assert "1/2" in press("runbook.approve", f"{rid}:gate", actor=APPROVER1).text
    with pytest.raises(InvalidInput, match="you already approved"):
        press("runbook.approve", f"{rid}:gate", actor=APPROVER1)
    assert states(rb_services)["gate"] == "open"
    press("runbook.approve", f"{rid}:gate", actor=APPROVER2)
    after = states(rb_services)
    assert (after["gate"], after["restart"], after["tell"]) == ("approved", "executor", "done")
    with rb_services.db.transaction() as s:
        told = s.exec(select(OutboxMessage).where(OutboxMessage.key == f"runbook-notify:{rid}:tell")).one()
        assert told.target == "C0OPS" and told.thread_key is None
        assert Message.from_json(told.payload["message"]).text == "web restart approved for INC-1"
        denied = s.exec(select(AuditEvent).where(AuditEvent.action == "permission.denied")).all()
        assert {e.actor for e in denied} == {RESPONDER, STARTER}
    body = checklist(rb_services, rid).body or ""
    assert "waiting for the remediation executor" in body


def test_one_reject_ends_the_gate_and_blocks_what_depends_on_it(rb_services: Core) -> None:
    ref = declare(rb_services)
    rb_services.commands.handle("/runbook", f"run drill {ref} service=web", actor=STARTER)
    rid = run_id(rb_services)
    rb_services.commands.handle("/runbook", f"done {ref} check", actor=STARTER)
    rb_services.commands.press("runbook.approve", f"{rid}:gate", actor=APPROVER1)
    form = rb_services.commands.press("runbook.reject", f"{rid}:gate", actor=APPROVER2).form
    assert form is not None and form.usage.startswith("/runbook reject INC-1 gate")
    rb_services.commands.submit(form.id, form.context, {"reason": "not during peak"}, actor=APPROVER2)
    assert states(rb_services) == {"check": "done", "gate": "rejected", "restart": "blocked",
                                   "tell": "blocked", "never": "skipped"}
    with rb_services.db.transaction() as s:
        assert s.get(RunbookRun, rid).state == "stopped"  # type: ignore[union-attr]
    assert "stopped" in card_fields(rb_services)["Runbook"]


def test_skip_needs_a_reason_and_the_form_or_typed_command_records_it(rb_services: Core) -> None:
    ref = declare(rb_services)
    rb_services.commands.handle("/runbook", f"run drill {ref} service=web", actor=STARTER)
    rid = run_id(rb_services)
    reply = rb_services.commands.press("runbook.skip", f"{rid}:check", actor=RESPONDER)
    assert reply.form is not None and reply.form.id == "runbook.skip"
    with pytest.raises(InvalidInput, match="needs a reason"):
        rb_services.commands.submit("runbook.skip", reply.form.context, {"reason": " "}, actor=RESPONDER)
    rb_services.commands.submit("runbook.skip", reply.form.context,
                                {"reason": "checked <!channel> already", "outcome": "worked around"},
                                actor=RESPONDER)
    with rb_services.db.transaction() as s:
        row = s.exec(select(RunbookStepRun).where(RunbookStepRun.step_id == "check")).one()
        assert (row.state, row.actor) == ("worked_around", RESPONDER)
        assert row.reason == "checked <!channel> already"
    assert "&lt;!channel&gt;" in (checklist(rb_services, rid).body or "")
    with pytest.raises(IllegalTransition, match="approval"):
        rb_services.commands.handle("/runbook", f"skip {ref} gate no time", actor=RESPONDER)


def test_a_run_keeps_its_pinned_version_after_the_file_changes_or_goes(
        rb_services: Core, runbooks_dir: Path) -> None:
    ref = declare(rb_services)
    rb_services.commands.handle("/runbook", f"run drill {ref} service=web", actor=STARTER)
    rid = run_id(rb_services)
    path = runbooks_dir / "drill.yaml"
    path.write_text(path.read_text().replace("1.0.0", "1.1.0")
                    .replace("Check {{ inputs.service }} dashboards", "NEW {{ inputs.service }} wording")
                    .replace("  - id: check\n",
                             "  - id: other\n    type: manual\n    title: x\n  - id: check\n"))
    rb_services.commands.handle("/runbook", f"done {ref} check", actor=RESPONDER)
    message = checklist(rb_services, rid)
    assert "drill 1.0.0" in message.text and "Check web dashboards" in (message.body or "")
    assert "NEW" not in (message.body or "") and "other" not in states(rb_services)
    path.unlink()
    rb_services.commands.press("runbook.approve", f"{rid}:gate", actor=APPROVER1)
    assert states(rb_services)["gate"] == "open"
    status = rb_services.commands.handle("/runbook", f"status {ref}", actor=STARTER).message
    assert status is not None and "drill 1.0.0" in status.text
    # a new item starts from what the file says now: here, there is no file any more
    ref2 = declare(rb_services, "second")
    with pytest.raises(NotFound, match="no runbook 'drill'"):
        rb_services.commands.handle("/runbook", f"run drill {ref2} service=web", actor=STARTER)


def test_an_edit_without_a_bump_is_pinned_separately_and_warned(rb_services: Core,
                                                                runbooks_dir: Path) -> None:
    rb_services.commands.handle("/runbook", f"run drill {declare(rb_services)} service=web", actor=STARTER)
    path = runbooks_dir / "drill.yaml"
    path.write_text(path.read_text().replace("Restart drill", "Restart drill (edited)"))
    reply = rb_services.commands.handle("/runbook", f"run drill {declare(rb_services)} service=web",
                                        actor=STARTER)
    assert "was changed without raising its version" in reply.text
    with rb_services.db.transaction() as s:
        pins = s.exec(select(RunbookSnapshot).where(RunbookSnapshot.runbook_id == "drill")).all()
        assert [p.version for p in pins] == ["1.0.0", "1.0.0"] and pins[0].sha256 != pins[1].sha256


def test_retired_refuses_and_deprecated_warns(rb_services: Core, runbooks_dir: Path) -> None:
    path = runbooks_dir / "drill.yaml"
    text = path.read_text()
    path.write_text(text.replace("status: active", "status: retired"))
    ref = declare(rb_services)
    with pytest.raises(DomainError, match=r"drill 1\.0\.0 is retired and cannot start"):
        rb_services.commands.handle("/runbook", f"run drill {ref} service=web", actor=STARTER)
    with pytest.raises(DomainError, match="retired"):
        rb_services.commands.handle("/incident", 'declare "x" runbook:drill', actor=STARTER)
    path.write_text(text.replace("status: active", "status: deprecated"))
    reply = rb_services.commands.handle("/runbook", f"run drill {ref} service=web", actor=STARTER)
    assert "drill 1.0.0 is deprecated" in reply.text
    assert states(rb_services)["check"] == "open"


def test_routing_picks_the_runbook_and_runbook_option_overrides(rb_services: Core) -> None:
    rb_services.commands.handle("/incident", 'declare "Checkout slow" sev2', actor=STARTER)
    assert states(rb_services, runbook="generic-incident")["command"] == "open"
    assert card_fields(rb_services, "INC-1")["Runbook"].startswith("generic-incident 1.0.0 · 0/7")
    rb_services.workitems.declare(actor=STARTER, title="EU db down", labels={"service": "db-eu-1"})
    assert states(rb_services, "INC-2", runbook="db-failover")["confirm_down"] == "open"  # input from label
    rb_services.commands.handle("/incident", 'declare "Leak?" sev1 runbook:cross-tenant-exposure',
                                actor=STARTER)
    with rb_services.db.transaction() as s:
        runs = s.exec(select(RunbookRun.runbook_id).order_by(col(RunbookRun.id))).all()
    assert runs == ["generic-incident", "db-failover", "cross-tenant-exposure"]
    rb_services.workitems.open_escalation(actor=STRANGER, title="Acme cannot export", tenants=["acme"])
    assert states(rb_services, runbook="customer-escalation")["acknowledge"] == "open"
    with pytest.raises(NotFound, match="no runbook 'nope'"):
        rb_services.commands.handle("/incident", 'declare "x" runbook:nope', actor=STARTER)


def test_a_routed_runbook_that_needs_inputs_waits_for_them_on_its_pinned_snapshot(
        rb_services: Core, runbooks_dir: Path) -> None:
    rb_services.commands.handle("/incident", 'declare "db?" runbook:db-failover', actor=STARTER)
    assert card_fields(rb_services)["Runbook"].endswith("needs inputs")
    path = runbooks_dir / "db-failover.yaml"
    path.write_text(path.read_text().replace("version: 1.0.0", "version: 2.0.0"))
    with pytest.raises(IllegalTransition, match="its steps cannot change"):
        rb_services.commands.handle("/runbook", "done INC-1 confirm_down", actor=STARTER)
    rb_services.commands.handle("/runbook", "run db-failover INC-1 service=db-eu-1", actor=STARTER)
    assert states(rb_services, runbook="db-failover")["confirm_down"] == "open"
    assert card_fields(rb_services)["Runbook"].startswith("db-failover 1.0.0")
