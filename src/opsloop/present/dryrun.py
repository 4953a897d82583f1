"""`/runbook run ... --dry-run`: everything rendered and checked, nothing called.

For each http step: the request exactly as it would go (secrets masked), the
allow-list and address checks (the host is resolved, not contacted), whether
the secrets it needs are set, and the approvals it needs — or, on a running
run, whether the approvals given still hold for this very request.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from opsloop.db import Database
from opsloop.errors import DomainError
from opsloop.messages import user
from opsloop.models import WorkItem
from opsloop.present.remediation import approvers_text, request_text
from opsloop.remediation.gates import Gates, binding, gates_of, render_call
from opsloop.remediation.http import HttpExecutor
from opsloop.remediation.service import call_of
from opsloop.runbooks import states as S
from opsloop.runbooks.engine import item_context
from opsloop.runbooks.models import RunbookRun, RunbookSnapshot
from opsloop.runbooks.render import Context, RenderError
from opsloop.runbooks.runs import Plan
from opsloop.runbooks.schema import ApprovalStep, HttpStep, Runbook


class DryRun:
    def __init__(self, db: Database, gates: Gates, executor: HttpExecutor) -> None:
        self.db = db
        self.gates = gates
        self.executor = executor

    def report(self, plan: Plan) -> list[str]:
        """What `plan` would call, checked step by step; nothing is called."""
        with self.db.transaction() as session:
            return self._report(session, plan.runbook, plan.inputs, plan.item, plan.tenants, plan.run)

    def _report(self, session: Session, runbook: Runbook, inputs: dict[str, Any], item: WorkItem,
                tenants: list[str], run: RunbookRun | None) -> list[str]:
        steps = [s for s in runbook.steps if isinstance(s, HttpStep)]
        if not steps:
            return ["No http steps: nothing would be called."]
        view = None
        if run is not None:
            view = self.gates.view(session, run)
            context = view.context
            context = Context(inputs={**context.inputs, **inputs}, item=context.item, steps=context.steps,
                              secret_names=context.secret_names)
        else:
            declared = {s.id: {"status": S.WAITING, "outputs": dict.fromkeys(s.outputs)
                               if isinstance(s, HttpStep) else {}} for s in runbook.steps}
            context = Context(inputs=inputs, item=item_context(item, tenants), steps=declared,
                              secret_names=frozenset(self.gates.policy.actions.secrets))
        lines = []
        for step in steps:
            lines.append(f"*Step `{step.id}` would call:*")
            try:
                request = render_call(step, context)
            except RenderError as error:
                lines.append(f"  ✗ cannot render: {error}")
                continue
            lines.append(request_text(request))
            try:
                address = self.executor.check(call_of(step, request))
                timeout = step.timeout.total_seconds()
                lines.append(f"  ✓ allowed (resolves to {address}); timeout {timeout:g}s, "
                             f"{step.retry.attempts} attempt(s), one Idempotency-Key")
            except DomainError as error:
                lines.append(f"  ✗ would be refused: {error}")
            lines += self._approvals(session, runbook, step, request, view)
        return lines

    def _approvals(self, session: Session, runbook: Runbook, step: HttpStep, request: dict[str, Any],
                   view: Any) -> list[str]:
        gates = gates_of(runbook, step.id)
        if not gates:
            return ["  no approval needed: it runs as soon as its prerequisites are done"]
        lines = []
        for gate_id in gates:
            gate = runbook.step(gate_id)
            assert isinstance(gate, ApprovalStep)
            need = (f"  needs `{gate_id}`: {gate.min_approvals} approval(s) from "
                    f"{approvers_text(gate.approvers)}, "
                    f"never the person who started the run")
            if view is None:
                lines.append(need)
                continue
            row = view.rows[gate_id]
            snapshot = session.get(RunbookSnapshot, view.run.snapshot_id)
            bound = binding(snapshot.sha256 if snapshot else "", step.id, request)
            holding = [a["by"] for a in row.approvals if (a.get("binding") or {}).get(step.id) == bound]
            if row.state == S.APPROVED and len(holding) >= gate.min_approvals:
                lines.append(f"  `{gate_id}` approved by {', '.join(user(u) for u in holding)} "
                             "for exactly this request")
            elif row.state == S.APPROVED:
                lines.append(f"  `{gate_id}` was approved for a different request: approval would be "
                             "asked again")
            else:
                lines.append(need + f" (now {row.state}, {len(row.approvals)} given)")
        return lines
