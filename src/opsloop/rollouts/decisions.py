"""What people decide about a rollout: Resume, Abort or Roll back a halted one; approve or reject a wave.

Resume, Abort and Roll back need `runbook.remediate` (those who may confirm or retry any call). A
wave's approval follows the rules of an `approval` step: approvers named by the wave (roles, users,
user groups), never the person who started the run, `min_approvals` distinct people, one reject
ends the rollout; each approval is bound to the SHA-256 of the wave's exact requests, and the wave
starts only if they still render the same when the last approval comes in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Update, update
from sqlmodel import Session, col, select

from opsloop.errors import IllegalTransition, InvalidInput, NotFound
from opsloop.rollouts import models as M
from opsloop.rollouts.models import Rollout, RolloutTarget
from opsloop.rollouts.report import errors_of
from opsloop.rollouts.requests import render_wave, wave_binding
from opsloop.rollouts.service import Rollouts, audit_rollout
from opsloop.runbooks.steps import Refused


def updated(session: Session, statement: Update) -> int:
    """Run an UPDATE; how many rows it changed."""
    result = session.execute(statement)
    return int(cast(CursorResult[Any], result).rowcount)


VERBS = ("resume", "abort", "rollback", "approve", "reject")


@dataclass(frozen=True)
class Decided:
    ref: str
    step_id: str
    verb: str
    state: str  # the rollout's state after it
    note: str


class Decisions:
    def __init__(self, rollouts: Rollouts) -> None:
        self.rollouts = rollouts
        self.db = rollouts.db
        self.clock = rollouts.clock
        self.authz = rollouts.authz

    def decide(self, *, actor: str, rollout_id: int, verb: str, reason: str | None = None) -> Decided:
        if verb not in VERBS:
            raise InvalidInput(f"unknown rollout action {verb!r} (one of: {', '.join(VERBS)})")
        if verb in ("resume", "abort", "rollback"):
            self._may_remediate(actor, rollout_id, "resume, abort or roll back rollouts", f"rollout.{verb}")
        try:
            return self._decide(actor, rollout_id, verb, reason)
        except Refused as refused:  # audited in a transaction of its own, once this one is undone
            raise self.authz.refuse(actor, refused.action, subject=refused.subject,
                                    reason=refused.reason) from None

    def _may_remediate(self, actor: str, rollout_id: int, doing: str, attempted: str) -> None:
        """Resume, Abort, Roll back and settling a tenant's call all need `runbook.remediate`."""
        self.authz.require(actor, "runbook.remediate", subject=f"rollout:{rollout_id}", doing=doing,
                           attempted=attempted)

    def _decide(self, actor: str, rollout_id: int, verb: str, reason: str | None) -> Decided:
        now = self.clock.now()
        with self.db.transaction() as session:
            rollout = self.rollouts.locked(session, rollout_id)
            view = self.rollouts.view(session, rollout)
            before = rollout.state
            if verb in ("approve", "reject"):
                note = self._approval(session, rollout, actor, verb, reason, now)
            else:
                note = getattr(self, f"_{verb}")(session, rollout, actor, now)
            after = {"state": rollout.state, "wave": rollout.wave, **({"reason": reason} if reason else {})}
            audit_rollout(session, view.item.ref, rollout, f"rollout.{verb}", now, after, actor=actor,
                          before={"state": before})
            return Decided(view.item.ref, rollout.step_id, verb, rollout.state, note)

    # ------------------------------------------------------------------ halted

    def _resume(self, session: Session, rollout: Rollout, actor: str, now: datetime) -> str:
        if rollout.state != M.HALTED:
            raise IllegalTransition(
                f"the rollout is {rollout.state.replace('_', ' ')}; only a halted one resumes"
            )
        assert rollout.id is not None
        rollout.forgiven = errors_of(session, rollout.id)
        rollout.state, rollout.halted_reason, rollout.decided_by, rollout.updated_at = (
            M.RUNNING,
            None,
            actor,
            now,
        )
        session.add(rollout)
        view = self.rollouts.view(session, rollout)
        self.rollouts.say(session, view.item, rollout, "resumed", actor, now)
        self.rollouts.settle(session, rollout, now)  # its wave may be over already: the next one starts
        return (
            f"resumed: the {rollout.forgiven} error(s) so far are set aside, the budget of "
            f"{rollout.allowed_errors} applies again from here"
        )

    def _abort(self, session: Session, rollout: Rollout, actor: str, now: datetime) -> str:
        if rollout.state in (*M.ROLLOUT_OVER, M.ROLLING_BACK):
            raise IllegalTransition(f"the rollout is {rollout.state.replace('_', ' ')}; it cannot be aborted")
        skipped = self._skip_rest(session, rollout, now)
        rollout.decided_by = actor
        self.rollouts.end(
            session, rollout, M.ABORTED, actor, now, f"aborted by {actor}; {skipped} tenant(s) not called"
        )
        return f"aborted: {skipped} tenant(s) will not be called; calls in flight finish and are recorded"

    def _rollback(self, session: Session, rollout: Rollout, actor: str, now: datetime) -> str:
        view = self.rollouts.view(session, rollout)
        if view.step.rollback is None:
            raise IllegalTransition(f"step {rollout.step_id} has no `rollback` request; abort it instead")
        if rollout.state not in (M.HALTED, M.ABORTED):
            raise IllegalTransition(
                f"the rollout is {rollout.state.replace('_', ' ')}; roll back a halted or aborted rollout"
            )
        skipped = self._skip_rest(session, rollout, now)
        undo = updated(
            session,
            update(RolloutTarget)
            .where(col(RolloutTarget.rollout_id) == rollout.id, col(RolloutTarget.state) == M.SUCCEEDED)
            .values(state=M.RB_PENDING),
        )
        rollout.state, rollout.decided_by, rollout.updated_at = M.ROLLING_BACK, actor, now
        rollout.finished_at = None
        session.add(rollout)
        self.rollouts.say(session, view.item, rollout, "rolling_back", actor, now)
        self.rollouts.settle(session, rollout, now)  # nothing done yet: rolled back at once
        return (
            f"rolling back: {undo} tenant(s) done get their rollback request; {skipped} not called "
            "will not be"
        )

    def _skip_rest(self, session: Session, rollout: Rollout, now: datetime) -> int:
        return updated(
            session,
            update(RolloutTarget)
            .where(
                col(RolloutTarget.rollout_id) == rollout.id,
                col(RolloutTarget.state).in_((M.WAITING, M.PENDING)),
            )
            .values(state=M.SKIPPED, finished_at=now),
        )

    # ------------------------------------------------------------------ one tenant

    def settle(self, *, actor: str, rollout_id: int, tenant: str, verb: str) -> str:
        """`succeeded` / `failed` for a tenant whose call is unknown; `retry` for a failed or unknown one
        (an unknown one keeps its Idempotency-Key, a failed one gets a new one)."""
        if verb not in ("succeeded", "failed", "retry"):
            raise InvalidInput(f"unknown outcome {verb!r} (succeeded, failed or retry)")
        self._may_remediate(actor, rollout_id, "confirm or retry rollout calls", f"rollout.tenant.{verb}")
        now = self.clock.now()
        with self.db.transaction() as session:
            rollout = self.rollouts.locked(session, rollout_id)
            target = session.exec(
                select(RolloutTarget)
                .where(RolloutTarget.rollout_id == rollout_id, RolloutTarget.tenant_id == tenant)
                .with_for_update()
            ).first()
            if target is None:
                raise NotFound(f"tenant {tenant} is not a target of this rollout")
            before = target.state
            if verb == "retry":
                if target.state not in (M.FAILED, M.UNKNOWN) or rollout.state in (
                    *M.ROLLOUT_OVER,
                    M.ROLLING_BACK,
                ):
                    raise IllegalTransition(
                        f"{tenant} is {target.state} and the rollout {rollout.state}; only a "
                        "failed or unknown tenant of a rollout under way can be retried"
                    )
                if target.state == M.FAILED:
                    target.generation += 1  # a new call: the failed one must not be replayed by key
                target.state, target.error, target.finished_at, target.claimed_by = (
                    M.PENDING,
                    None,
                    None,
                    None,
                )
            else:
                if target.state != M.UNKNOWN:
                    raise IllegalTransition(
                        f"{tenant} is {target.state}; only an unknown outcome is confirmed by hand"
                    )
                target.state, target.error = verb, f"confirmed {verb} by {actor}"
            session.add(target)
            view = self.rollouts.view(session, rollout)
            audit_rollout(session, view.item.ref, rollout, f"rollout.tenant.{verb}", now,
                          {"tenant": tenant, "state": target.state}, actor=actor,
                          before={"tenant": tenant, "state": before})
            self.rollouts.settle(session, rollout, now)
            self.rollouts.progress(session, rollout, now)
            return f"{tenant}: {before} → {target.state}"

    # ------------------------------------------------------------------ a wave's approval

    def _approval(
        self, session: Session, rollout: Rollout, actor: str, verb: str, reason: str | None, now: datetime
    ) -> str:
        if rollout.state != M.APPROVAL:
            raise IllegalTransition(
                f"the rollout is {rollout.state.replace('_', ' ')}; no wave waits for approval"
            )
        view = self.rollouts.view(session, rollout)
        assert view.step.fleet is not None
        gate = view.step.fleet.waves[rollout.wave].approval
        assert gate is not None
        if not self.rollouts.runbooks.may_approve(actor, gate.approvers):
            raise Refused(
                f"rollout.{verb}",
                view.item.ref,
                f"you may not {verb} this wave: its approvers are {', '.join(gate.approvers)}",
            )
        if actor == view.run.started_by:
            raise Refused(
                f"rollout.{verb}",
                view.item.ref,
                f"you started this run, so your {verb} cannot count; ask another approver",
            )
        if verb == "reject":
            skipped = self._skip_rest(session, rollout, now)
            self.rollouts.end(
                session,
                rollout,
                M.ABORTED,
                actor,
                now,
                f"wave {view.step.fleet.wave_name(rollout.wave)} rejected by {actor}"
                + (f": {reason}" if reason else ""),
            )
            return f"rejected: the rollout ends; {skipped} tenant(s) will not be called"
        if any(a["by"] == actor for a in rollout.approvals):
            raise InvalidInput("you already approved this wave; it needs another approver")
        if rollout.approval_expires_at is not None and now >= rollout.approval_expires_at:
            self.rollouts.begin_wave(session, rollout, now)  # asked again, with the requests as they are now
            return ("that request had expired; the wave's requests were rendered again and approval is "
                    "asked again")
        rollout.approvals = [
            *rollout.approvals,
            {"by": actor, "at": now.isoformat(), "binding": rollout.binding},
        ]
        rollout.updated_at = now
        session.add(rollout)
        if len(rollout.approvals) < gate.min_approvals:
            self.rollouts.say(session, view.item, rollout, "approval", actor, now)
            return f"approved ({len(rollout.approvals)} of {gate.min_approvals})"
        now_bound = wave_binding(
            view.sha256, rollout.step_id, rollout.wave, render_wave(view, rollout)
        )
        if now_bound != rollout.binding:
            self.rollouts.begin_wave(session, rollout, now)
            return "the wave's requests changed since approval was asked; approval is asked again"
        self.rollouts.release(session, rollout, view, now)
        return f"approved: wave {view.step.fleet.wave_name(rollout.wave)} starts"
