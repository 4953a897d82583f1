"""The remediation executor: claims approved http step runs, calls them once, records what happened.

Where it runs: a scheduler job (bot.scheduler) and the console after each
line call `work()`; never a Slack request. A claim is one transaction that
re-renders the request, re-checks the approvals and the allow-list, and moves
the call to `sending` with a lease — committed before any byte leaves. Only
the claiming worker records the result. A `sending` call whose lease ran out
(its worker died mid-call) becomes `unknown` and waits for a person: it is
never sent again by itself.

Calls run concurrently, at most `actions.concurrency` at once, each on its own
thread: one API that is slow to answer holds up no other work item's call.

Exactly one worker per call: the claim takes the audit chain's head first
(the lock order every writer keeps), locks the call row, and moves it with a
conditional UPDATE ... WHERE state IN ('pending', 'approved'); a second worker
finds it `sending` and moves on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.bus import Bus
from opsloop.errors import IllegalTransition
from opsloop.events import CallFinished, RunChanged, StepCompleted, StepOpened
from opsloop.models import WorkItem
from opsloop.remediation.decisions import CallDecisions
from opsloop.remediation.gates import Gates
from opsloop.remediation.http import Call, HttpExecutor, Outcome
from opsloop.remediation.models import (
    APPROVED,
    FAILED,
    PENDING,
    SENDING,
    SUCCEEDED,
    UNKNOWN,
    RemediationCall,
    idempotency_key,
)
from opsloop.remediation.safety import Refused
from opsloop.remediation.secrets import MissingSecret
from opsloop.runbooks import states as S
from opsloop.runbooks.engine import Engine
from opsloop.runbooks.models import RunbookRun, RunbookStepRun
from opsloop.runbooks.pinning import runbook_of, snapshot_of
from opsloop.runbooks.runs import Runbooks
from opsloop.runbooks.schema import ApprovalStep, HttpStep
from opsloop.service import Service

log = logging.getLogger(__name__)
LEASE_MARGIN = timedelta(seconds=30)


def worker_name() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Claim:
    call_id: int
    call: Call
    key: str
    worker: str


def calls_of(session: Session, run_id: int) -> list[RemediationCall]:
    return list(session.exec(select(RemediationCall).where(RemediationCall.run_id == run_id)))


def call_of(step: HttpStep, request: dict[str, object]) -> Call:
    return Call(method=str(request["method"]), url=str(request["url"]),
                headers=dict(request.get("headers") or {}),  # type: ignore[call-overload]
                json_body=request.get("json"), expect=tuple(step.expect.status),
                timeout=step.timeout.total_seconds(), attempts=step.retry.attempts,
                on_status=tuple(step.retry.on_status), outputs=dict(step.outputs))


@dataclass(eq=False)
class Remediation(Service):
    runbooks: Runbooks
    executor: HttpExecutor
    bus: Bus
    worker: str = field(default_factory=worker_name, kw_only=True)
    gates: Gates = field(init=False)
    decisions: CallDecisions = field(init=False)
    engine: Engine = field(init=False)
    _calls: ThreadPoolExecutor = field(init=False)
    _free: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        self.gates = Gates(self.policy, self.clock, self.runbooks, self.bus)
        self.decisions = CallDecisions(self.db, self.clock, self.authz, self.runbooks, self.gates,
                                       self.finish)
        self.engine = self.runbooks.engine
        self._calls = ThreadPoolExecutor(max_workers=self.policy.actions.concurrency,
                                         thread_name_prefix="opsloop-remediation")
        self._free = threading.BoundedSemaphore(self.policy.actions.concurrency)

    # ------------------------------------------------------------------ handlers

    def on_opened(self, session: Session, event: StepOpened) -> None:
        """An approval step asks its approvers; an http step waits for the executor."""
        if event.step_type == "approval":
            run = session.get(RunbookRun, event.run_id)
            assert run is not None
            view = self.gates.view(session, run)
            gate = view.runbook.step(event.step_id)
            assert isinstance(gate, ApprovalStep)
            self.gates.open_round(session, view, gate, event.at)
        elif event.step_type == "http":
            run = session.get(RunbookRun, event.run_id)
            assert run is not None
            step = runbook_of(snapshot_of(session, run)).step(event.step_id)
            if isinstance(step, HttpStep) and step.foreach:
                return  # one call per tenant: opsloop.rollouts runs it
            row = session.exec(select(RunbookStepRun).where(RunbookStepRun.run_id == event.run_id,
                                                            RunbookStepRun.step_id == event.step_id)).one()
            call = self._call_for(session, row)
            if call is None:
                assert row.id is not None
                session.add(RemediationCall(step_run_id=row.id, run_id=event.run_id, step_id=row.step_id,
                                            state=PENDING, created_at=event.at, updated_at=event.at))
            elif call.state in (PENDING, APPROVED):
                call.state, call.updated_at = PENDING, event.at
                session.add(call)

    def refuse_busy_call(self, session: Session, event: StepCompleted) -> None:
        """A step whose call is on its way, or succeeded, cannot be done or skipped by hand."""
        row = session.exec(select(RunbookStepRun).where(RunbookStepRun.run_id == event.run_id,
                                                        RunbookStepRun.step_id == event.step_id)).one()
        call = self._call_for(session, row)
        if call is not None and call.state == SENDING:
            raise IllegalTransition(f"step {row.step_id} is being called right now; wait for its result")
        if call is not None and call.state == SUCCEEDED:
            raise IllegalTransition(f"step {row.step_id} already succeeded")

    def _call_for(self, session: Session, row: RunbookStepRun) -> RemediationCall | None:
        return session.exec(select(RemediationCall).where(RemediationCall.step_run_id == row.id)).first()

    # ------------------------------------------------------------------ the work loop

    def work(self, limit: int = 20, *, wait: bool = True) -> int:
        """Recover abandoned calls, then claim up to `limit` calls (as many at a time as there are
        free call threads) and run them concurrently; returns how many were started. With `wait`,
        returns once they (and the calls they made ready) have been recorded; without, calls go on
        on their threads after the return."""
        self.recover()
        total = 0
        while total < limit:
            started = self._start(limit - total)
            total += len(started)
            if not wait or not started:
                break
            for future in started:
                future.result()
        return total

    def _start(self, limit: int) -> list[Future[None]]:
        started: list[Future[None]] = []
        while len(started) < limit and self._free.acquire(blocking=False):
            try:
                claim = self.claim()
            except BaseException:
                self._free.release()
                raise
            if claim is None:
                self._free.release()
                break
            started.append(self._calls.submit(self._call, claim))
        return started

    def _call(self, claim: Claim) -> None:
        try:
            self.record(claim, self.executor.execute(claim.call, claim.key))
        except Exception:  # the lease runs out and the call becomes `unknown`: a person decides
            log.exception("remediation call %s could not be completed", claim.call_id)
        finally:
            self._free.release()

    def run_safely(self, limit: int = 20) -> int:
        """The scheduler's job: start what is due and return at once (calls finish on their threads)."""
        try:
            return self.work(limit, wait=False)
        except Exception:
            log.exception("remediation work failed; the next run retries")
            return 0

    def recover(self) -> int:
        """`sending` calls whose lease ran out become `unknown`: their worker died mid-call."""
        now = self.clock.now()
        with self.db.engine.connect() as connection:  # a cheap look before taking any lock
            stale = connection.execute(select(RemediationCall.id).where(
                RemediationCall.state == SENDING, col(RemediationCall.lease_until) < now)).first()
        if stale is None:
            return 0
        count = 0
        with self.db.transaction() as session:
            audit.lock_chain(session)
            calls = session.exec(select(RemediationCall).where(
                RemediationCall.state == SENDING, col(RemediationCall.lease_until) < now)
                .with_for_update(skip_locked=True)).all()
            for call in calls:
                call.state, call.updated_at = UNKNOWN, now
                call.error = (f"the worker {call.claimed_by} stopped while calling (its lease ended "
                              f"{call.lease_until:%H:%M:%S} UTC); the request may or may not have arrived")
                session.add(call)
                self.finish(session, call, {}, now, action="remediation.unknown")
                count += 1
        return count

    def claim(self) -> Claim | None:
        now = self.clock.now()
        with self.db.engine.connect() as connection:
            if connection.execute(select(RemediationCall.id).where(
                    col(RemediationCall.state).in_((PENDING, APPROVED)))).first() is None:
                return None
        claimed: Claim | None = None
        with self.db.transaction() as session:
            audit.lock_chain(session)
            candidates = session.exec(select(RemediationCall).where(
                col(RemediationCall.state).in_((PENDING, APPROVED))).order_by(col(RemediationCall.id))
                .limit(20).with_for_update(skip_locked=True)).all()
            for call in candidates:
                claimed = self._try(session, call, now)
                if claimed is not None:
                    break
        return claimed

    def _try(self, session: Session, call: RemediationCall, now: datetime) -> Claim | None:
        run = session.exec(select(RunbookRun).where(RunbookRun.id == call.run_id).with_for_update()).one()
        view = self.gates.view(session, run)
        row = view.rows[call.step_id]
        if run.state != S.RUN_RUNNING or row.state != S.EXECUTOR:
            return None  # waiting for its gate again, or skipped: nothing to call
        step = view.runbook.step(call.step_id)
        assert isinstance(step, HttpStep)
        request = view.request(step)
        bound = view.binding(step)
        if "error" in request:
            self._refuse(session, call, f"cannot render the request: {request['error']}", now)
            return None
        problem = self.gates.verify(session, view, step, bound, now)
        if problem is not None:
            self.gates.reopen(session, view, problem[0], problem[1], now,
                              "expired" if "lapsed" in problem[1] else "changed")
            return None
        spec = call_of(step, request)
        try:
            self.executor.check(spec)
        except (Refused, MissingSecret) as error:
            call.request = request  # secrets as references: safe to keep, and shown with the refusal
            self._refuse(session, call, f"refused before sending: {error}", now)
            return None
        except Exception as error:  # never a call the executor would trip over on every pass
            log.exception("checking remediation call %s failed", call.id)
            call.request = request
            self._refuse(session, call, f"refused before sending: the request cannot be checked "
                                        f"({type(error).__name__})", now)
            return None
        if call.state == PENDING:
            audit.record(session, at=now, actor=S.AUTOMATIC, action="remediation.approved",
                         subject=view.item.ref, after={"call": call.id, "step": call.step_id,
                                                       "binding": bound})
        lease = now + timedelta(seconds=spec.budget()) + LEASE_MARGIN
        moved = session.exec(update(RemediationCall)  # type: ignore[call-overload]
                             .where(col(RemediationCall.id) == call.id,
                                    col(RemediationCall.state).in_((PENDING, APPROVED)))
                             .values(state=SENDING, claimed_by=self.worker, lease_until=lease,
                                     request=request, binding=bound, updated_at=now,
                                     attempts=0, status=None, error=None))
        if moved.rowcount != 1:
            return None
        session.refresh(call)
        audit.record(session, at=now, actor=S.AUTOMATIC, action="remediation.sending",
                     subject=view.item.ref,
                     after={"call": call.id, "step": call.step_id, "worker": self.worker,
                            "method": request["method"], "url": request["url"],
                            "idempotency_key": idempotency_key(call)})
        assert call.id is not None and run.id is not None
        self.bus.publish(session, RunChanged(at=now, item=view.item, run_id=run.id))
        return Claim(call.id, spec, idempotency_key(call), self.worker)

    def _refuse(self, session: Session, call: RemediationCall, why: str, now: datetime) -> None:
        call.state, call.error, call.updated_at, call.finished_at = FAILED, why, now, now
        session.add(call)
        self.finish(session, call, {}, now, action="remediation.refused")

    def record(self, claim: Claim, outcome: Outcome) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            audit.lock_chain(session)
            call = session.exec(select(RemediationCall).where(RemediationCall.id == claim.call_id)
                                .with_for_update()).one()
            if call.claimed_by != claim.worker or call.state not in (SENDING, UNKNOWN) or call.decided_by:
                audit.record(session, at=now, actor=S.AUTOMATIC, action="remediation.late_result",
                             subject=f"call:{call.id}", after={"state": outcome.state,
                                                               "status": outcome.status})
                return
            call.state, call.attempts, call.status = outcome.state, outcome.attempts, outcome.status
            call.error, call.address, call.updated_at = outcome.error, outcome.address, now
            call.lease_until = None
            call.finished_at = now if outcome.state != UNKNOWN else None
            session.add(call)
            self.finish(session, call, outcome.outputs, now, action=f"remediation.{outcome.state}")

    def finish(self, session: Session, call: RemediationCall, outputs: Mapping[str, Any], now: datetime,
                *, action: str, actor: str = S.AUTOMATIC) -> None:
        """Write a call's outcome onto its step and the audit log, and say it (`CallFinished`)."""
        run = session.exec(select(RunbookRun).where(RunbookRun.id == call.run_id).with_for_update()).one()
        item = session.get(WorkItem, run.work_item_id)
        row = session.get(RunbookStepRun, call.step_run_id)
        assert item is not None and row is not None and call.id is not None and run.id is not None
        audit.record(session, at=now, actor=actor, action=action, subject=item.ref,
                     after={"call": call.id, "step": call.step_id, "state": call.state,
                            "status": call.status, "attempts": call.attempts, "outputs": dict(outputs),
                            **({"error": call.error} if call.error else {})})
        # the result first: advancing may complete the run (or open the next gate), which says so after it
        self.bus.publish(session, CallFinished(at=now, item=item, run_id=run.id, call_id=call.id,
                                               step_id=call.step_id, action=action, actor=actor,
                                               outputs=dict(outputs)))
        if call.state == SUCCEEDED and row.state == S.EXECUTOR:
            row.state, row.outputs, row.actor, row.finished_at = S.DONE, dict(outputs), actor, now
            row.reason, row.updated_at = None, now
            session.add(row)
            tenants = self.engine.tenants(session, item)
            view = self.gates.view(session, run)
            self.engine.advance(session, run, view.runbook, item, tenants, now)
        elif row.state == S.EXECUTOR:
            row.reason, row.updated_at = call.error, now
            session.add(row)
        self.bus.publish(session, RunChanged(at=now, item=item, run_id=run.id))
