"""The runbook engine: which steps open when, what runs by itself, and what templates see.

Called inside the caller's transaction; every automatic change is audited as
opsloop itself (`system:opsloop`). A step that opens for people or for the
remediation executor is published as `StepOpened`, a run that ends as
`RunFinished`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from opsloop import audit, outbox
from opsloop.bus import Bus
from opsloop.errors import InvalidInput
from opsloop.events import RunFinished, StepOpened
from opsloop.messages import Message
from opsloop.models import WorkItem, WorkItemTenant
from opsloop.outbox import CHAT
from opsloop.policy import Policy
from opsloop.runbooks import states as S
from opsloop.runbooks.models import RunbookRun, RunbookStepRun
from opsloop.runbooks.render import Context, RenderError, evaluate, render_chat
from opsloop.runbooks.schema import ApprovalStep, HttpStep, NotifyStep, Runbook


class Engine:
    def __init__(self, policy: Policy, bus: Bus) -> None:
        self.policy = policy
        self.bus = bus

    def advance(self, session: Session, run: RunbookRun, runbook: Runbook, item: WorkItem,
                 tenants: list[str], now: datetime, *, step_rows: list[RunbookStepRun] | None = None) -> None:
        """Open every step whose prerequisites are met; post notify steps; finish the run. `step_rows`:
        the run's rows when the caller holds them (it has just inserted them); else they are read."""
        rows = {s.step_id: s for s in (self.steps(session, run) if step_rows is None else step_rows)}
        changed = True
        while changed:
            changed = False
            for index, step in enumerate(runbook.steps):
                row = rows[step.id]
                if row.state != S.WAITING:
                    continue
                needs = [rows[p].state for p in runbook.prerequisites(index)]
                stopped = [p for p in runbook.prerequisites(index) if rows[p].state in S.STOPPING]
                if stopped:
                    why = f"{stopped[0]} was {rows[stopped[0]].state}"
                    self.auto(session, item, run, row, S.BLOCKED, why, now)
                elif all(state in S.SATISFIED for state in needs):
                    self.open(session, run, runbook, step, row, rows, item, tenants, now)
                else:
                    continue
                changed = True
        if all(r.state in S.TERMINAL for r in rows.values()) and run.state == S.RUN_RUNNING:
            halted = any(r.state in S.STOPPING for r in rows.values())
            run.state = S.RUN_STOPPED if halted else S.RUN_COMPLETED
            run.finished_at = now
            session.add(run)
            self.audit(session, S.AUTOMATIC, f"runbook.{run.state}", item, now,
                       after={"run": run.id, "runbook": run.runbook_id})
            assert run.id is not None
            self.bus.publish(session, RunFinished(at=now, item=item, run_id=run.id, runbook_id=run.runbook_id,
                                                  state=run.state))

    def open(self, session: Session, run: RunbookRun, runbook: Runbook, step: Any, row: RunbookStepRun,
              rows: dict[str, RunbookStepRun], item: WorkItem, tenants: list[str], now: datetime) -> None:
        context = self.context(runbook, run, list(rows.values()), item, tenants)
        if step.when is not None:
            try:
                if not evaluate(step.when, context, where=f"steps.{step.id}.when"):
                    self.auto(session, item, run, row, S.SKIPPED, f"condition is false: {step.when}", now)
                    return
            except RenderError as error:  # never guess: leave it to people
                self.auto(session, item, run, row, S.OPEN, f"decide by hand: {error}", now)
                return
        if isinstance(step, NotifyStep):
            try:
                text = render_chat(step.message, context, where=f"steps.{step.id}.message")
            except RenderError as error:
                self.auto(session, item, run, row, S.OPEN, f"could not post, post it by hand: {error}", now)
                return
            outbox.enqueue(session, transport=CHAT, target=self.policy.channel(step.channel), now=now,
                           key=f"runbook-notify:{run.id}:{step.id}",
                           payload={"message": Message(text=text, context=f"{item.ref} · runbook "
                                                       f"{runbook.id} · step {step.id}").to_json()})
            row.outputs = {"channel": step.channel}
            self.auto(session, item, run, row, S.DONE, None, now)
            return
        self.auto(session, item, run, row, S.EXECUTOR if isinstance(step, HttpStep) else S.OPEN, None, now)
        assert run.id is not None
        kind = "http" if isinstance(step, HttpStep) else "approval" if isinstance(step, ApprovalStep) \
            else "manual"
        self.bus.publish(session, StepOpened(at=now, item=item, run_id=run.id, step_id=step.id,
                                             step_type=kind))

    def auto(self, session: Session, item: WorkItem, run: RunbookRun, row: RunbookStepRun, state: str,
              reason: str | None, now: datetime) -> None:
        before = row.state
        row.state, row.reason, row.updated_at = state, reason, now
        if state in S.TERMINAL:
            row.actor, row.finished_at = S.AUTOMATIC, now
        session.add(row)
        self.audit(session, S.AUTOMATIC, "runbook.step.auto", item, now,
                    before={"run": run.id, "step": row.step_id, "state": before},
                    after={"run": run.id, "step": row.step_id, "state": state,
                           **({"reason": reason} if reason else {})})

    def context(self, runbook: Runbook, run: RunbookRun, rows: list[RunbookStepRun], item: WorkItem,
                tenants: list[str]) -> Context:
        by_id = {r.step_id: r for r in rows}
        steps: dict[str, dict[str, Any]] = {}
        for step in runbook.steps:
            row = by_id.get(step.id)
            declared = dict.fromkeys(step.outputs) if isinstance(step, HttpStep) else {}
            steps[step.id] = {"status": row.state if row else S.WAITING,
                              "outputs": {**declared, **(row.outputs if row else {})}}
        # a run still waiting for inputs shows their names where the values will go
        inputs = {**{k: f"[{k}]" for k in runbook.inputs}, **run.inputs}
        return Context(inputs=inputs, item=item_context(item, tenants), steps=steps,
                       secret_names=frozenset(self.policy.actions.secrets))

    def runs(self, session: Session, item: WorkItem) -> list[RunbookRun]:
        return list(session.exec(select(RunbookRun).where(RunbookRun.work_item_id == item.id)
                                 .order_by(col(RunbookRun.id).desc())))

    def steps(self, session: Session, run: RunbookRun) -> list[RunbookStepRun]:
        return list(session.exec(select(RunbookStepRun).where(RunbookStepRun.run_id == run.id)
                                 .order_by(col(RunbookStepRun.position))))

    def tenants(self, session: Session, item: WorkItem) -> list[str]:
        return list(session.exec(select(WorkItemTenant.tenant_id)
                                 .where(WorkItemTenant.work_item_id == item.id)
                                 .order_by(col(WorkItemTenant.tenant_id))))

    def audit(self, session: Session, actor: str, action: str, item: WorkItem, now: datetime,
               before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
        audit.record(session, at=now, actor=actor, action=action, subject=item.ref, before=before,
                     after=after)


def item_context(item: WorkItem, tenants: list[str]) -> dict[str, Any]:
    """The work item as templates see it: plain values, nothing that reaches the database."""
    return {"id": item.ref, "ref": item.ref, "kind": item.kind, "title": item.title,
            "severity": item.severity, "state": item.state, "tenants": list(tenants),
            "labels": dict(item.labels), "owner": item.owner, "channel": item.channel}


def resolve_inputs(runbook: Runbook, given: dict[str, Any]) -> dict[str, Any]:
    """Typed inputs from what was typed, plus defaults; InvalidInput names every problem."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for name in given:
        if name not in runbook.inputs:
            takes = ", ".join(runbook.inputs) or "no inputs"
            problems.append(f"unknown input {name!r} ({runbook.id} takes: {takes})")
    for name, spec in runbook.inputs.items():
        if name in given:
            raw = given[name]
            try:
                values[name] = raw if not isinstance(raw, str) else spec.accept(raw)
            except InvalidInput as error:
                problems.append(f"{name}: {error}")
        elif spec.default is not None:
            values[name] = spec.default
        elif spec.required:
            hint = f" matching {spec.pattern}" if spec.pattern else f" ({spec.type})"
            problems.append(f"missing input {name}=…{hint}")
    if problems:
        raise InvalidInput("; ".join(problems))
    return values


def values_from_labels(runbook: Runbook, labels: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    missing: list[str] = []
    for name, spec in runbook.inputs.items():
        if name in labels:
            try:
                values[name] = spec.accept(labels[name])
                continue
            except InvalidInput:
                pass
        if spec.default is not None:
            values[name] = spec.default
        elif spec.required:
            missing.append(name)
    return values, missing
