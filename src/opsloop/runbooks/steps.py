"""People's actions on a run's steps: done, skip, workaround, approve, reject.

`act` applies one in the caller's transaction and returns the event that says
what happened (the caller publishes it); a refusal by role raises `Refused`,
which the caller audits and turns into `PermissionDenied`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from opsloop import audit
from opsloop.errors import IllegalTransition, InvalidInput, NotFound
from opsloop.events import ApprovalDecided, StepCompleted
from opsloop.models import WorkItem
from opsloop.runbooks import states as S
from opsloop.runbooks.models import RunbookRun, RunbookStepRun
from opsloop.runbooks.pinning import runbook_of, snapshot_of
from opsloop.runbooks.schema import ApprovalStep

if TYPE_CHECKING:  # the service calls in; this module never builds one
    from opsloop.runbooks.runs import Runbooks

_CLOSED = {"closed", "expired", "rejected"}


@dataclass
class Refused(Exception):
    """The person may not take this step action (audited and answered by the caller)."""

    action: str
    subject: str
    reason: str


def progress(steps: list[RunbookStepRun]) -> tuple[int, int]:
    """(steps over, steps in all)."""
    return sum(1 for s in steps if s.state in S.TERMINAL), len(steps)


def act(runbooks: Runbooks, session: Session, actor: str, run_id: int, step_id: str, verb: str,
        reason: str | None, now: datetime) -> StepCompleted | ApprovalDecided:
    audit.lock_chain(session)  # the lock order every writer keeps: the chain's head first
    run = session.exec(select(RunbookRun).where(RunbookRun.id == run_id).with_for_update()).first()
    if run is None:
        raise NotFound(f"no runbook run {run_id}")
    item = session.get(WorkItem, run.work_item_id)
    assert item is not None
    runbook = runbook_of(snapshot_of(session, run))
    engine = runbooks.engine
    rows = {s.step_id: s for s in engine.steps(session, run)}
    row = rows.get(step_id)
    if row is None:
        raise NotFound(f"runbook {runbook.id} has no step {step_id!r} (steps: {', '.join(rows)})")
    if run.state != S.RUN_RUNNING:
        raise IllegalTransition(f"the {runbook.id} run on {item.ref} is "
                                f"{run.state.replace('_', ' ')}; its steps cannot change")
    if item.state in _CLOSED:
        raise IllegalTransition(f"{item.ref} is {item.state}; its runbook steps cannot change")
    step = runbook.step(step_id)
    before = row.state
    if verb in ("approve", "reject"):
        _decide(runbooks, run, item, step, row, actor, verb, reason, now)
    else:
        _tick(step, row, actor, verb, reason, now)
    session.add(row)
    engine.audit(session, actor, f"runbook.step.{verb}", item, now,
                 before={"run": run.id, "step": step_id, "state": before},
                 after={"run": run.id, "step": step_id, "state": row.state,
                        **({"reason": reason} if reason else {}),
                        **({"approvals": [a["by"] for a in row.approvals]} if row.approvals else {})})
    engine.advance(session, run, runbook, item, engine.tenants(session, item), now)
    assert run.id is not None
    if verb in ("approve", "reject"):
        assert isinstance(step, ApprovalStep)
        return ApprovalDecided(at=now, item=item, run_id=run.id, runbook_id=runbook.id, step_id=step_id,
                               verb=verb, actor=actor, reason=reason, approvals=len(row.approvals),
                               needed=step.min_approvals, before=before, after=row.state)
    return StepCompleted(at=now, item=item, run_id=run.id, runbook_id=runbook.id, step_id=step_id, verb=verb,
                         actor=actor, reason=reason, before=before, after=row.state)


def _tick(step: Any, row: RunbookStepRun, actor: str, verb: str, reason: str | None, now: datetime) -> None:
    if isinstance(step, ApprovalStep):
        raise IllegalTransition(f"step {step.id} is an approval: approve or reject it, "
                                "it cannot be done or skipped")
    if verb == "done":
        if row.state != S.OPEN:
            raise IllegalTransition(_not_now(row, "done"))
        row.state = S.DONE
    else:  # skip / workaround: also ahead of time, for a step that will not apply
        if row.state not in (S.OPEN, S.WAITING, S.EXECUTOR):
            raise IllegalTransition(_not_now(row, "skipped"))
        row.state = S.SKIPPED if verb == "skip" else S.WORKED_AROUND
    row.actor, row.reason, row.updated_at, row.finished_at = actor, reason, now, now


def _decide(runbooks: Runbooks, run: RunbookRun, item: WorkItem, step: Any, row: RunbookStepRun,
            actor: str, verb: str, reason: str | None, now: datetime) -> None:
    if not isinstance(step, ApprovalStep):
        raise IllegalTransition(f"step {step.id} is not an approval; mark it done or skip it")
    if row.state != S.OPEN:
        raise IllegalTransition(_not_now(row, "decided"))
    if not runbooks.may_approve(actor, step.approvers):
        raise Refused(f"runbook.{verb}", item.ref,
                      f"you may not {verb} step {step.id}: its approvers are {', '.join(step.approvers)}")
    if actor == run.started_by:
        raise Refused(f"runbook.{verb}", item.ref,
                      f"you started this run, so your {verb} cannot count; ask another approver")
    if verb == "reject":
        row.state, row.actor, row.reason, row.finished_at = S.REJECTED, actor, reason, now
        row.updated_at = now
        return
    if any(a["by"] == actor for a in row.approvals):
        raise InvalidInput(f"you already approved step {step.id}; it needs another approver")
    row.approvals = [*row.approvals, {"by": actor, "at": now.isoformat()}]
    row.updated_at = now
    if len(row.approvals) >= step.min_approvals:
        row.state, row.actor, row.finished_at = S.APPROVED, actor, now


def decide_with_item(runbooks: Runbooks, session: Session, item: WorkItem, actor: str, verb: str,
                     reason: str | None, now: datetime) -> list[ApprovalDecided]:
    """An exception's own approval (or rejection) decides the approval steps of its running
    runbooks too, open or not yet open: one decision, never "approved" in one place while the
    exception is still requested in another. Returns what happened, for the caller to publish."""
    engine, decided = runbooks.engine, []
    for run in engine.runs(session, item):
        if run.state != S.RUN_RUNNING:
            continue
        runbook = runbook_of(snapshot_of(session, run))
        for row in engine.steps(session, run):
            step = runbook.step(row.step_id)
            if not isinstance(step, ApprovalStep) or row.state not in (S.WAITING, S.OPEN):
                continue
            before = row.state
            if verb == "approve":
                row.approvals = [*row.approvals, {"by": actor, "at": now.isoformat(), "with": item.ref}]
                row.state = S.APPROVED
            else:
                row.state, row.reason = S.REJECTED, reason
            row.actor, row.updated_at, row.finished_at = actor, now, now
            session.add(row)
            engine.audit(session, actor, f"runbook.step.{verb}", item, now,
                         before={"run": run.id, "step": row.step_id, "state": before},
                         after={"run": run.id, "step": row.step_id, "state": row.state, "with": item.ref})
            assert run.id is not None
            decided.append(ApprovalDecided(at=now, item=item, run_id=run.id, runbook_id=runbook.id,
                                           step_id=row.step_id, verb=verb, actor=actor, reason=reason,
                                           approvals=len(row.approvals), needed=step.min_approvals,
                                           before=before, after=row.state))
        engine.advance(session, run, runbook, item, engine.tenants(session, item), now)
    return decided


def _not_now(row: RunbookStepRun, verb: str) -> str:
    return f"step {row.step_id} is {row.state.replace('_', ' ')}; it cannot be {verb} now"
