"""Approval gates that bind to the exact request they let through.

A gate covers the http steps behind it: those whose prerequisites lead back
to it without passing another approval. Each approval stores, per covered
step, the SHA-256 of (the pinned runbook's hash, the step id, the rendered
request with secrets as markers). Before a call is claimed, the request is
rendered again; unless `min_approvals` approvals carry that same hash and the
gate's round has not expired, the gate asks again (a new round, a new request
message) and the covered steps wait for it.

A round expires `expires_after` after it was requested while it is still
open, and `expires_after` after it was approved once it is: an approval that
was not used in time is asked for again. A durable timer makes that visible
when it happens; the claim checks it again, authoritatively.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.bus import Bus
from opsloop.clock import Clock
from opsloop.events import ApprovalDecided, ApprovalRequested, GateReopened, RunChanged
from opsloop.models import WorkItem
from opsloop.policy import Policy
from opsloop.remediation.models import APPROVED, PENDING, ApprovalRound, RemediationCall
from opsloop.runbooks import states as S
from opsloop.runbooks.models import RunbookRun, RunbookStepRun
from opsloop.runbooks.pinning import runbook_of, snapshot_of
from opsloop.runbooks.render import Context, RenderError, render_request
from opsloop.runbooks.runs import Runbooks
from opsloop.runbooks.schema import ApprovalStep, HttpStep, Runbook
from opsloop.timers.models import Timer

GATE_TIMER = "runbook.gate.expire"
TENANT_SHAPE = {k: f"{{tenant.{k}}}" for k in ("id", "name", "tier", "region", "renewal_date", "band")}


def gates_of(runbook: Runbook, step_id: str) -> list[str]:
    """The approval steps guarding `step_id`: back through its prerequisites, stopping at approvals
    and at earlier http steps (a gate covers the calls up to the next call; a later call that
    needs approval of its own gets its own gate, so its request can be shown when it is known)."""
    index = {s.id: i for i, s in enumerate(runbook.steps)}
    found: list[str] = []
    todo = runbook.prerequisites(index[step_id])
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if isinstance(runbook.step(name), ApprovalStep):
            found.append(name)
        elif not isinstance(runbook.step(name), HttpStep):
            todo += runbook.prerequisites(index[name])
    return sorted(found)


def covered(runbook: Runbook, gate_id: str) -> list[HttpStep]:
    return [s for s in runbook.steps if isinstance(s, HttpStep) and gate_id in gates_of(runbook, s.id)]


def render_call(step: HttpStep, context: Context) -> dict[str, Any]:
    """The request as it would be sent, secrets as markers (safe to show, store and hash)."""
    where = f"steps.{step.id}.request"
    return {
        "method": step.request.method,
        "url": render_request(step.request.url, context, where=f"{where}.url"),
        "headers": render_request(dict(step.request.headers), context, where=f"{where}.headers"),
        "json": render_request(step.request.json_body, context, where=f"{where}.json", typed=True),
    }


def binding(snapshot_sha: str, step_id: str, request: dict[str, Any]) -> str:
    text = json.dumps([snapshot_sha, step_id, request], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class RunView:
    """A run with everything needed to render its requests, loaded in one session."""

    run: RunbookRun
    runbook: Runbook
    sha256: str
    item: WorkItem
    tenants: list[str]
    rows: dict[str, RunbookStepRun]
    context: Context

    def request(self, step: HttpStep) -> dict[str, Any]:
        """The request the step will send; for a `foreach: tenants` step, its shape, with each
        tenant field shown as `{tenant.id}` (each wave's exact requests are bound when it starts)."""
        context = replace(self.context, tenant=TENANT_SHAPE) if step.foreach else self.context
        try:
            return render_call(step, context)
        except RenderError as error:
            return {"error": str(error)}

    def binding(self, step: HttpStep) -> str:
        return binding(self.sha256, step.id, self.request(step))


@dataclass(eq=False)
class Gates:
    policy: Policy
    clock: Clock
    runbooks: Runbooks
    bus: Bus

    def view(self, session: Session, run: RunbookRun) -> RunView:
        snapshot = snapshot_of(session, run)
        item = session.get(WorkItem, run.work_item_id)
        assert item is not None
        runbook = runbook_of(snapshot)
        rows = self.runbooks.engine.steps(session, run)
        tenants = self.runbooks.engine.tenants(session, item)
        return RunView(run, runbook, snapshot.sha256, item, tenants, {r.step_id: r for r in rows},
                       self.runbooks.engine.context(runbook, run, rows, item, tenants))

    def current(self, session: Session, row: RunbookStepRun) -> ApprovalRound | None:
        return session.exec(select(ApprovalRound).where(ApprovalRound.step_run_id == row.id)
                            .order_by(col(ApprovalRound.number).desc())).first()

    # ------------------------------------------------------------------ asking

    def open_round(self, session: Session, view: RunView, gate: ApprovalStep, now: datetime,
                   why: str | None = None) -> ApprovalRound:
        row = view.rows[gate.id]
        assert row.id is not None and view.item.id is not None
        last = self.current(session, row)
        steps = covered(view.runbook, gate.id)
        requests = {s.id: view.request(s) for s in steps}
        round_ = ApprovalRound(
            step_run_id=row.id, number=(last.number + 1) if last else 1, requested_at=now,
            binding={s.id: binding(view.sha256, s.id, requests[s.id]) for s in steps},
            expires_at=now + gate.expires_after if gate.expires_after else None)
        session.add(round_)
        session.flush()
        assert round_.id is not None
        if round_.expires_at is not None:
            self._timer(session, view.item, round_)
        assert view.run.id is not None
        self.bus.publish(session, ApprovalRequested(
            at=now, item=view.item, run_id=view.run.id, round_id=round_.id, number=round_.number,
            gate_id=gate.id, runbook_id=view.runbook.id, version=view.runbook.version,
            requester=view.run.started_by, requests=requests, expires_at=round_.expires_at,
            expires_after=gate.expires_after, why=why))
        audit.record(session, at=now, actor=S.AUTOMATIC, action="runbook.gate.requested",
                     subject=view.item.ref, after={"run": view.run.id, "step": gate.id,
                                                   "round": round_.number, "binding": round_.binding,
                                                   **({"why": why} if why else {})})
        return round_

    def _timer(self, session: Session, item: WorkItem, round_: ApprovalRound) -> None:
        assert round_.expires_at is not None
        session.add(Timer(kind=GATE_TIMER, due_at=round_.expires_at, work_item_id=item.id,
                          payload={"round": round_.id}, created_at=round_.requested_at))

    # ------------------------------------------------------------------ deciding (an ApprovalDecided handler)

    def on_decision(self, session: Session, event: ApprovalDecided) -> None:
        """Bind a new approval to the requests as they render now; time an approved gate."""
        run = session.get(RunbookRun, event.run_id)
        assert run is not None
        view = self.view(session, run)
        row, now = view.rows[event.step_id], event.at
        round_ = self.current(session, row)
        if event.verb == "reject":
            if round_ is not None and round_.closed_at is None:
                round_.closed_at, round_.outcome = now, "rejected"
                session.add(round_)
            return
        gate = view.runbook.step(event.step_id)
        assert isinstance(gate, ApprovalStep)
        bound = {s.id: view.binding(s) for s in covered(view.runbook, gate.id)}
        last = {**row.approvals[-1], "binding": bound, "round": round_.number if round_ else None}
        row.approvals = [*row.approvals[:-1], last]
        session.add(row)
        if row.state == S.APPROVED and round_ is not None:
            round_.outcome = "approved"
            if gate.expires_after is not None:  # the approval itself lasts this long
                round_.expires_at = now + gate.expires_after
                self._timer(session, view.item, round_)
            session.add(round_)

    # ------------------------------------------------------------------ checking before a call

    def verify(self, session: Session, view: RunView, step: HttpStep, bound: str,
               now: datetime) -> tuple[str, str] | None:
        """None when every gate of `step` approved exactly this request in time; else (gate, why)."""
        for gate_id in gates_of(view.runbook, step.id):
            gate = view.runbook.step(gate_id)
            assert isinstance(gate, ApprovalStep)
            row = view.rows[gate_id]
            if row.state != S.APPROVED:
                return gate_id, f"{gate_id} is {row.state}"
            round_ = self.current(session, row)
            if round_ is not None and round_.expires_at is not None and now >= round_.expires_at:
                return gate_id, (f"the approval of {gate_id} lapsed at {round_.expires_at:%H:%M} UTC "
                                 "before the call; approval is asked again")
            matching = {a["by"] for a in row.approvals if (a.get("binding") or {}).get(step.id) == bound}
            if len(matching) < gate.min_approvals:
                return gate_id, (f"the request of step {step.id} changed after {gate_id} was approved "
                                 "(inputs, the item or earlier outputs); approval is asked again")
        return None

    def reopen(self, session: Session, view: RunView, gate_id: str, why: str, now: datetime,
               outcome: str) -> None:
        """Ask again: the gate opens with no approvals, its covered http steps wait for it."""
        gate = view.runbook.step(gate_id)
        assert isinstance(gate, ApprovalStep)
        row = view.rows[gate_id]
        before = {"state": row.state, "approvals": [a["by"] for a in row.approvals]}
        round_ = self.current(session, row)
        if round_ is not None and round_.closed_at is None:
            round_.closed_at, round_.outcome = now, outcome
            session.add(round_)
        row.state, row.approvals, row.actor, row.finished_at = S.OPEN, [], None, None
        row.reason, row.updated_at = why, now
        session.add(row)
        for step in covered(view.runbook, gate_id):
            step_row = view.rows[step.id]
            if step_row.state == S.EXECUTOR:
                step_row.state, step_row.updated_at = S.WAITING, now
                session.add(step_row)
            call = session.exec(select(RemediationCall)
                                .where(RemediationCall.step_run_id == step_row.id)).first()
            if call is not None and call.state in (PENDING, APPROVED):
                call.state, call.updated_at = PENDING, now
                session.add(call)
        audit.record(session, at=now, actor=S.AUTOMATIC, action="runbook.gate.reopened",
                     subject=view.item.ref, before={"run": view.run.id, "step": gate_id, **before},
                     after={"run": view.run.id, "step": gate_id, "state": S.OPEN, "why": why})
        assert view.run.id is not None
        self.bus.publish(session, GateReopened(at=now, item=view.item, run_id=view.run.id, gate_id=gate_id,
                                               why=why))
        self.open_round(session, view, gate, now, why=why)
        self.bus.publish(session, RunChanged(at=now, item=view.item, run_id=view.run.id))

    # ------------------------------------------------------------------ the expiry timer

    def on_timer(self, session: Session, timer: Timer, now: datetime) -> str:
        round_ = session.get(ApprovalRound, int(timer.payload.get("round", 0)))
        if round_ is None or round_.closed_at is not None:
            return "skipped: the round is closed"
        if round_.expires_at is None or round_.expires_at > now:
            return "skipped: the round runs longer"
        row = session.get(RunbookStepRun, round_.step_run_id)
        run = session.get(RunbookRun, row.run_id) if row is not None else None
        if row is None or run is None or run.state != S.RUN_RUNNING:
            return "skipped: the run is not running"
        session.refresh(run, with_for_update=True)
        view = self.view(session, run)
        if row.state == S.OPEN:
            self.reopen(session, view, row.step_id, f"the request for {row.step_id} expired without "
                        "enough approvals", now, "expired")
            return "fired: asked again"
        if row.state != S.APPROVED:
            return f"skipped: the gate is {row.state}"
        waiting = [s.id for s in covered(view.runbook, row.step_id) if self._unused(session, view, s.id)]
        if not waiting:
            round_.closed_at, round_.outcome = now, "used"
            session.add(round_)
            return "skipped: the approval was used"
        self.reopen(session, view, row.step_id, f"the approval of {row.step_id} lapsed before "
                    f"{', '.join(waiting)} could be called", now, "expired")
        return "fired: approval lapsed"

    def _unused(self, session: Session, view: RunView, step_id: str) -> bool:
        row = view.rows[step_id]
        if row.state in S.TERMINAL:
            return False
        step = view.runbook.step(step_id)
        if isinstance(step, HttpStep) and step.foreach:  # its rollout started: the approval was used
            return row.state != S.EXECUTOR
        call = session.exec(select(RemediationCall).where(RemediationCall.step_run_id == row.id)).first()
        return call is None or call.state in (PENDING, APPROVED)
