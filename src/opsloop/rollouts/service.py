"""Fleet rollouts: a `foreach: tenants` step's targets pinned when its run starts, then called wave by
wave within an error budget; people Resume, Abort or Roll back a halted one.

Handlers (in the table in opsloop/table.py): `pin` on RunAttached / RunStarted (the targets of every
foreach step of the run are chosen and pinned), `on_opened` on StepOpened (the step's rollout starts:
its first wave, its deadline clock), `refuse_busy` on StepCompleted (a rollout in progress is not
done or skipped by hand: Abort it). The calls themselves are made by `opsloop.rollouts.calls`.

Every change takes the audit chain's head first, then the rollout row (the lock order every writer
keeps), so replicas serialise on one rollout and never deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.bus import Bus
from opsloop.errors import IllegalTransition, NotFound
from opsloop.events import RolloutChanged, RunAttached, RunStarted, StepCompleted, StepOpened
from opsloop.models import WorkItem
from opsloop.rollouts import models as M
from opsloop.rollouts.models import Rollout, RolloutTarget
from opsloop.rollouts.report import (
    RolloutReport,
    any_in_wave,
    count_in,
    counts,
    errors_of,
    of_step,
    outcomes,
    report,
    wave_tenants,
)
from opsloop.rollouts.requests import RunView, render_wave, view_of, wave_binding
from opsloop.rollouts.targets import pin_targets
from opsloop.runbooks import states as S
from opsloop.runbooks.models import RunbookRun
from opsloop.runbooks.pinning import runbook_of, snapshot_of
from opsloop.runbooks.runs import Runbooks
from opsloop.runbooks.schema import HttpStep
from opsloop.service import Service
from opsloop.sla.calendars import ALWAYS
from opsloop.sla.clocks import ClockBook
from opsloop.sla.models import SlaClock
from opsloop.sla.policies import match_policy, tier_of

AUTOMATIC = S.AUTOMATIC
DEADLINE = "rollout"  # the SLA clock target of a rollout's `deadline`


def audit_rollout(session: Session, subject: str, rollout: Rollout, action: str, now: datetime,
                  after: dict[str, Any], *, actor: str = AUTOMATIC,
                  before: dict[str, Any] | None = None) -> None:
    """A rollout's entry in the audit chain: what it was (`before`, if anything) and is now, each naming
    the rollout first."""
    audit.record(session, at=now, actor=actor, action=action, subject=subject,
                 before=None if before is None else {"rollout": rollout.id, **before},
                 after={"rollout": rollout.id, **after})


@dataclass(eq=False)
class Rollouts(Service):
    runbooks: Runbooks
    bus: Bus
    book: ClockBook  # the SLA's: a rollout's deadline is an SLA clock

    # ------------------------------------------------------------------ handlers

    def pin(self, session: Session, event: RunAttached | RunStarted) -> None:
        """A run started: the targets of each of its foreach steps are chosen now and kept."""
        run = session.get(RunbookRun, event.run_id)
        if run is not None and run.state == S.RUN_RUNNING:
            self._pin_run(session, run, event.item, event.at)

    def _pin_run(self, session: Session, run: RunbookRun, item: WorkItem, now: datetime) -> None:
        runbook = runbook_of(snapshot_of(session, run))
        for step in runbook.steps:
            if isinstance(step, HttpStep) and step.foreach and of_step(session, run, step.id) is None:
                pin_targets(session, run, step, item, now)

    def on_opened(self, session: Session, event: StepOpened) -> None:
        """A foreach step's prerequisites are met: its rollout starts with its first wave."""
        if event.step_type != "http":
            return
        run = session.get(RunbookRun, event.run_id)
        assert run is not None
        runbook = runbook_of(snapshot_of(session, run))
        step = runbook.step(event.step_id)
        if not (isinstance(step, HttpStep) and step.foreach):
            return
        rollout = of_step(session, run, step.id) or pin_targets(session, run, step, event.item, event.at)
        if rollout.state != M.PINNED:
            return
        rollout.state, rollout.started_at, rollout.updated_at = M.RUNNING, event.at, event.at
        assert step.fleet is not None
        if step.fleet.deadline is not None:
            rollout.clock_id = self._deadline(session, event.item, step.fleet.deadline, event.at)
        session.add(rollout)
        audit.record(
            session,
            at=event.at,
            actor=AUTOMATIC,
            action="rollout.started",
            subject=event.item.ref,
            after={
                "run": run.id,
                "step": step.id,
                "targets": rollout.targets,
                "deadline": step.fleet.deadline,
            },
        )
        self.say(session, event.item, rollout, "started", AUTOMATIC, event.at)
        self.begin_wave(session, rollout, event.at)

    def refuse_busy(self, session: Session, event: StepCompleted) -> None:
        """A foreach step whose rollout is under way cannot be done or skipped by hand."""
        run = session.get(RunbookRun, event.run_id)
        rollout = of_step(session, run, event.step_id) if run is not None else None
        if rollout is not None and rollout.state not in (M.PINNED, *M.ROLLOUT_OVER):
            raise IllegalTransition(
                f"step {event.step_id} is a rollout that is {rollout.state.replace('_', ' ')}; "
                f"use `/runbook abort {event.item.ref} {event.step_id}` to stop it"
            )

    def _deadline(self, session: Session, item: WorkItem, deadline: timedelta, now: datetime) -> int | None:
        """The deadline is an SLA clock on the item: its warnings (the item's policy's `warn_at`) and
        breach fire like any other clock's."""
        assert item.id is not None
        match = match_policy(self.policy, item, tier_of(session, item.id))
        clock = self.book.start(
            session,
            work_item_id=item.id,
            target=DEADLINE,
            seconds=int(deadline.total_seconds()),
            policy_index=match.index if match else -1,
            calendar=ALWAYS,
            now=now,
        )
        return clock.id

    # ------------------------------------------------------------------ waves

    def begin_wave(self, session: Session, rollout: Rollout, now: datetime) -> None:
        """Start the current wave (or the next one with tenants in it), or complete the rollout."""
        view = self.view(session, rollout)
        while rollout.wave < len(rollout.waves):
            if any_in_wave(session, rollout, rollout.wave, (M.WAITING,)):
                break
            rollout.wave += 1
        else:
            self._complete(session, rollout, view, now)
            return
        fleet = view.step.fleet
        assert fleet is not None
        wave = fleet.waves[rollout.wave]
        requests = render_wave(view, rollout, keep=wave.approval is not None)
        rollout.updated_at, rollout.next_wave_at = now, None
        if wave.approval is not None:
            rollout.state, rollout.approvals = M.APPROVAL, []
            rollout.binding = wave_binding(view.sha256, rollout.step_id, rollout.wave, requests)
            expires = wave.approval.expires_after
            rollout.approval_expires_at = now + expires if expires else None
            session.add(rollout)
            asked = {"wave": rollout.wave, "binding": rollout.binding, "tenants": [t for t, _ in requests]}
            audit_rollout(session, view.item.ref, rollout, "rollout.wave.approval", now, asked)
            self.say(session, view.item, rollout, "approval", AUTOMATIC, now)
            return
        self.release(session, rollout, view, now)

    def release(self, session: Session, rollout: Rollout, view: RunView, now: datetime) -> None:
        """The current wave's rendered tenants may be called now."""
        rollout.state, rollout.updated_at = M.RUNNING, now
        session.add(rollout)
        started = wave_tenants(session, rollout, M.WAITING)
        session.execute(
            update(RolloutTarget)
            .where(
                col(RolloutTarget.rollout_id) == rollout.id,
                col(RolloutTarget.wave) == rollout.wave,
                col(RolloutTarget.state) == M.WAITING,
            )
            .values(state=M.PENDING)
        )
        audit_rollout(session, view.item.ref, rollout, "rollout.wave.started", now,
                      {"wave": rollout.wave, "tenants": started})
        self.say(session, view.item, rollout, "wave", AUTOMATIC, now, tenants=tuple(started))
        self.settle(session, rollout, now)  # a wave whose every request failed to render is over at once

    def settle(self, session: Session, rollout: Rollout, now: datetime, *, errors_added: bool = True) -> None:
        """After calls were recorded: halt on a spent budget, or move past a finished wave.

        `errors_added=False` (a batch of results none of which counts against the budget) skips
        counting the errors: every change that adds one settles in its own transaction, under the
        rollout's lock, and Resume sets the errors so far aside, so a budget not spent after the last
        settle is not spent now."""
        if rollout.state == M.ROLLING_BACK:
            if not count_in(session, rollout, (M.RB_PENDING, M.RB_SENDING)):
                self.end(
                    session,
                    rollout,
                    M.ROLLED_BACK,
                    rollout.decided_by or AUTOMATIC,
                    now,
                    f"rolled back by {rollout.decided_by}",
                )
            return
        if rollout.state != M.RUNNING:
            return
        assert rollout.id is not None
        if errors_added:
            errors = errors_of(session, rollout.id)
            if errors - rollout.forgiven > rollout.allowed_errors:
                self._halt(session, rollout, errors, now)
                return
        if any_in_wave(session, rollout, rollout.wave, (M.PENDING, M.SENDING)):
            return
        view = self.view(session, rollout)
        fleet = view.step.fleet
        assert fleet is not None
        finished = wave_tenants(session, rollout, M.SUCCEEDED)
        self.say(session, view.item, rollout, "wave_done", AUTOMATIC, now, tenants=tuple(finished))
        rollout.wave += 1
        if rollout.wave >= len(rollout.waves):
            self._complete(session, rollout, view, now)
        elif fleet.pause_between > timedelta(0):
            rollout.state, rollout.next_wave_at, rollout.updated_at = (
                M.PAUSING,
                now + fleet.pause_between,
                now,
            )
            session.add(rollout)
            self.say(session, view.item, rollout, "pausing", AUTOMATIC, now)
        else:
            self.begin_wave(session, rollout, now)

    def _halt(self, session: Session, rollout: Rollout, errors: int, now: datetime) -> None:
        view = self.view(session, rollout)
        failures = session.exec(
            select(RolloutTarget)
            .where(RolloutTarget.rollout_id == rollout.id, col(RolloutTarget.state).in_(M.ERRORS))
            .order_by(col(RolloutTarget.finished_at).desc(), col(RolloutTarget.position))
            .limit(3)
        ).all()
        why = (
            f"{errors - rollout.forgiven} error(s), the budget allows {rollout.allowed_errors}: "
            + "; ".join(f"{t.tenant_id} {t.state}: {t.error or t.status}" for t in failures)
        )
        rollout.state, rollout.halted_reason, rollout.updated_at = M.HALTED, why, now
        session.add(rollout)
        audit_rollout(session, view.item.ref, rollout, "rollout.halted", now,
                      {"wave": rollout.wave, "errors": errors, "allowed": rollout.allowed_errors, "why": why})
        self.say(session, view.item, rollout, "halted", AUTOMATIC, now, note=why)

    def _complete(self, session: Session, rollout: Rollout, view: RunView, now: datetime) -> None:
        by_state = counts(session, rollout)
        outputs = {
            "succeeded": by_state.get(M.SUCCEEDED, 0),
            "failed": by_state.get(M.FAILED, 0) + by_state.get(M.UNKNOWN, 0),
            "targets": rollout.targets,
        }
        self.end(session, rollout, M.COMPLETED, AUTOMATIC, now, None, outputs=outputs)

    def end(
        self,
        session: Session,
        rollout: Rollout,
        state: str,
        actor: str,
        now: datetime,
        why: str | None,
        *,
        outputs: dict[str, Any] | None = None,
    ) -> None:
        """The rollout is over: its step is done (completed) or blocked (aborted, rolled back)."""
        view = self.view(session, rollout)
        rollout.state, rollout.finished_at, rollout.updated_at = state, now, now
        session.add(rollout)
        if rollout.clock_id is not None:
            clock = session.get(SlaClock, rollout.clock_id, with_for_update=True)
            if clock is not None:
                self.book.stop(session, clock, now)
        audit_rollout(session, view.item.ref, rollout, f"rollout.{state}", now,
                      {"step": rollout.step_id, **counts(session, rollout)}, actor=actor)
        self.say(session, view.item, rollout, state, actor, now, note=why)
        row = view.rows[rollout.step_id]
        if row.state == S.EXECUTOR:
            done = state == M.COMPLETED
            row.state = S.DONE if done else S.BLOCKED
            row.outputs, row.reason = outputs or {}, why
            row.actor, row.finished_at, row.updated_at = actor, now, now
            session.add(row)
            engine = self.runbooks.engine
            engine.advance(session, view.run, view.runbook, view.item, engine.tenants(session, view.item),
                           now)

    # ------------------------------------------------------------------ reading

    def view(self, session: Session, rollout: Rollout) -> RunView:
        return view_of(session, rollout, self.runbooks.engine, self.clock.now())

    def report(self, session: Session, rollout: Rollout) -> RolloutReport:
        view = self.view(session, rollout)
        assert view.step.fleet is not None
        return report(
            session,
            rollout,
            view.step.fleet,
            self.book,
            self.clock.now(),
            rollback=view.step.rollback is not None,
        )

    def of_item(self, ref: str) -> list[tuple[RolloutReport, list[dict[str, object]]]]:
        """Every rollout on the item (newest run first): how it stands and each tenant's outcome."""
        with self.db.transaction() as session:
            item = self.runbooks.find_item(session, ref)
            found = []
            for run in self.runbooks.engine.runs(session, item):
                for rollout in session.exec(
                    select(Rollout).where(Rollout.run_id == run.id).order_by(col(Rollout.id))
                ):
                    fleet = self.view(session, rollout).step.fleet
                    assert fleet is not None
                    found.append((self.report(session, rollout), outcomes(session, rollout, fleet)))
            return found

    def locked(self, session: Session, rollout_id: int) -> Rollout:
        """The rollout row, locked, after the audit chain's head (the lock order)."""
        audit.lock_chain(session)
        rollout = session.exec(select(Rollout).where(Rollout.id == rollout_id).with_for_update()).first()
        if rollout is None:
            raise NotFound(f"no rollout {rollout_id}")
        return rollout

    def locate(self, ref: str, step_id: str) -> int:
        """The rollout of step `step_id` on `ref`'s newest run that has one."""
        with self.db.transaction() as session:
            item = self.runbooks.find_item(session, ref)
            for run in self.runbooks.engine.runs(session, item):
                found = of_step(session, run, step_id)
                if found is not None and found.id is not None:
                    return found.id
        raise NotFound(f"{ref.upper()} has no rollout step {step_id!r}")

    def say(
        self,
        session: Session,
        item: WorkItem,
        rollout: Rollout,
        what: str,
        actor: str,
        now: datetime,
        *,
        tenants: tuple[str, ...] = (),
        note: str | None = None,
    ) -> None:
        assert rollout.id is not None
        self.bus.publish(
            session,
            RolloutChanged(
                at=now,
                item=item,
                run_id=rollout.run_id,
                rollout_id=rollout.id,
                step_id=rollout.step_id,
                what=what,
                actor=actor,
                wave=rollout.wave,
                tenants=tenants,
                note=note,
            ),
        )

    def progress(self, session: Session, rollout: Rollout, now: datetime) -> None:
        """Calls were recorded: the progress message is edited (debounced by its presenter)."""
        view_item = session.get(WorkItem, rollout.work_item_id)
        assert view_item is not None
        self.say(session, view_item, rollout, "progress", AUTOMATIC, now)
