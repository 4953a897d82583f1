"""What people decide about remediation calls: settle an unknown outcome (`succeeded` / `failed`) or
`retry` a failed or unknown one (needs `runbook.remediate`); and the lookups the commands need to get
there (a step's call, an approval request's gate).

A retry of an unknown outcome keeps its Idempotency-Key (the API may have seen it); a failed one gets
a new one. The outcome is written onto the step by the executor's own `finish`, so a decision moves
the run on exactly as a recorded result does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlmodel import Session, select

from opsloop import audit
from opsloop.authz import Authorizer
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.errors import IllegalTransition, InvalidInput, NotFound
from opsloop.remediation.gates import Gates, covered
from opsloop.remediation.models import (
    FAILED,
    PENDING,
    UNKNOWN,
    ApprovalRound,
    RemediationCall,
    idempotency_key,
)
from opsloop.runbooks import states as S
from opsloop.runbooks.models import RunbookRun, RunbookStepRun
from opsloop.runbooks.runs import Runbooks
from opsloop.runbooks.schema import ApprovalStep


class Finish(Protocol):
    """`Remediation.finish`: a call's outcome written onto its step and the audit log, and said."""

    def __call__(self, session: Session, call: RemediationCall, outputs: Mapping[str, Any], now: datetime,
                 *, action: str, actor: str = ...) -> None: ...


@dataclass(frozen=True)
class CallDecision:
    """A person settled an unknown outcome (`succeeded` / `failed`) or asked for a `retry`."""

    call_id: int
    step_id: str
    verb: str
    actor: str
    idempotency_key: str


@dataclass(eq=False)
class CallDecisions:
    db: Database
    clock: Clock
    authz: Authorizer
    runbooks: Runbooks
    gates: Gates
    finish: Finish

    def decide(self, *, actor: str, call_id: int, verb: str, retries: int | None = None) -> CallDecision:
        """`succeeded` / `failed` for an unknown outcome; `retry` for a failed or unknown one.

        `retries` (from a button) is how many retries the outcome it answers had had: a button
        pressed again after its retry was asked acts on nothing."""
        if verb not in ("succeeded", "failed", "retry"):
            raise InvalidInput(f"unknown remediation action {verb!r}")
        now = self.clock.now()
        self.authz.require(actor, "runbook.remediate", subject=f"call:{call_id}",
                           doing="confirm or retry remediation calls", attempted=f"remediation.{verb}")
        with self.db.transaction() as session:
            audit.lock_chain(session)
            call = session.exec(select(RemediationCall).where(RemediationCall.id == call_id)
                                .with_for_update()).first()
            if call is None:
                raise NotFound(f"no remediation call {call_id}")
            if retries is not None and retries != call.retries:
                raise IllegalTransition(f"`{call.step_id}` was already retried since that button was shown "
                                        f"(it is {call.state} now); use the newest message's buttons")
            before = call.state
            if verb == "retry":
                if call.state not in (FAILED, UNKNOWN):
                    raise IllegalTransition(f"step {call.step_id} is {call.state}; only a failed or unknown "
                                            "call can be retried")
                if call.state == FAILED:
                    call.generation += 1  # a new call: the failed one must not be replayed by key
                call.state, call.decided_by, call.claimed_by, call.finished_at = PENDING, None, None, None
                call.error, call.updated_at, call.retries = None, now, call.retries + 1
            else:
                if call.state != UNKNOWN:
                    raise IllegalTransition(f"step {call.step_id} is {call.state}; only an unknown outcome "
                                            "is confirmed by hand")
                call.state, call.decided_by, call.updated_at, call.finished_at = verb, actor, now, now
                call.error = None  # what is shown is who confirmed it (`decided_by`)
            session.add(call)
            self.finish(session, call, {}, now, action=f"remediation.{verb}", actor=actor)
            audit.record(session, at=now, actor=actor, action="remediation.decided",
                         subject=f"call:{call.id}", before={"state": before}, after={"state": call.state})
            assert call.id is not None
            return CallDecision(call.id, call.step_id, verb, actor, idempotency_key(call))

    def locate_call(self, ref: str, step_id: str) -> int:
        run_id = self.runbooks.locate(ref, step_id)
        with self.db.transaction() as session:
            call = session.exec(select(RemediationCall).where(RemediationCall.run_id == run_id,
                                                              RemediationCall.step_id == step_id)).first()
            if call is None or call.id is None:
                raise NotFound(f"step {step_id} of {ref.upper()} has not been called")
            return call.id

    def round_target(self, round_id: int) -> tuple[int, str, str | None]:
        """(run id, gate step id, why the request message is stale or None) of an approval round."""
        now = self.clock.now()
        stale: str | None = None
        with self.db.transaction() as session:
            audit.lock_chain(session)
            round_ = session.get(ApprovalRound, round_id)
            row = session.get(RunbookStepRun, round_.step_run_id) if round_ is not None else None
            if round_ is None or row is None:
                raise NotFound(f"no approval request {round_id}")
            run = session.exec(select(RunbookRun).where(RunbookRun.id == row.run_id).with_for_update()).one()
            assert run.id is not None
            if round_.closed_at is not None:
                return run.id, row.step_id, (f"this request was {round_.outcome}; "
                                             "answer the newest request in the thread")
            view = self.gates.view(session, run)
            now_bound = {s.id: view.binding(s) for s in covered(view.runbook, row.step_id)}
            if row.state == S.OPEN and now_bound != round_.binding:
                gate = view.runbook.step(row.step_id)
                assert isinstance(gate, ApprovalStep)
                round_.closed_at, round_.outcome = now, "changed"
                session.add(round_)
                self.gates.open_round(session, view, gate, now,
                                      why="the request changed since the last request message")
                stale = "the request changed since that message; a new request with the details was posted"
        return run.id, row.step_id, stale
