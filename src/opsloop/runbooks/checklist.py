"""How a run looks in the work item's thread: one checklist message, edited as steps move."""

from __future__ import annotations

from dataclasses import dataclass, field

from opsloop.cards import user
from opsloop.durations import format_duration
from opsloop.messages import Button, Message, escape
from opsloop.runbooks import states as S
from opsloop.runbooks.models import RunbookRun, RunbookStepRun
from opsloop.runbooks.render import Context, RenderError, render_chat
from opsloop.runbooks.schema import ApprovalStep, HttpStep, ManualStep, NotifyStep, Runbook, step_title

MAX_BODY = 2900  # Slack: a section's text holds at most 3000 characters
_ICON = {
    S.WAITING: "⏳", S.OPEN: "▶️", S.EXECUTOR: "🤖", S.DONE: "✅", S.SKIPPED: "⏭️",
    S.WORKED_AROUND: "🔧", S.APPROVED: "👍", S.REJECTED: "⛔", S.BLOCKED: "⛔",
}


@dataclass(frozen=True)
class StepView:
    """How another capability shows one of a run's steps: its status text and its buttons."""

    status: str
    buttons: list[Button] = field(default_factory=list)
    detail: str | None = None  # a line under the step (e.g. what an approval will let through)


def checklist_key(run_id: int) -> str:
    """The outbox key of a run's checklist message; edits point at it."""
    return f"runbook-run:{run_id}"


def progress(steps: list[RunbookStepRun]) -> tuple[int, int]:
    return sum(1 for s in steps if s.state in S.TERMINAL), len(steps)


def approvers_text(step: ApprovalStep) -> str:
    names = [f"role {a.removeprefix('role:')}" if a.startswith("role:") else
             (f"<!subteam^{a}>" if a.startswith("S") else user(a)) for a in step.approvers]
    return " or ".join(names)


def checklist(run: RunbookRun, runbook: Runbook, steps: list[RunbookStepRun], context: Context,
              *, sha256: str, views: dict[str, StepView] | None = None) -> Message:
    assert run.id is not None
    done, total = progress(steps)
    by_id = {s.step_id: s for s in steps}
    lines: list[str] = []
    buttons: list[Button] = []
    for number, step in enumerate(runbook.steps, start=1):
        row = by_id[step.id]
        title = _title(step, context)
        view = (views or {}).get(step.id)
        status = view.status if view is not None else _status(runbook, number - 1, row)
        line = f"{_ICON.get(row.state, '•')} {number}. {title} — {status}"
        if row.state == S.OPEN and step.details:
            line += "\n      " + _render(step.details, context, f"steps.{step.id}.details")
        if view is not None and view.detail:
            line += "\n      " + view.detail
        lines.append(line)
        buttons += _buttons(run.id, step, row) + (view.buttons if view is not None else [])
    head = f"📋 Runbook *{escape(runbook.title)}* ({runbook.id} {runbook.version}) — {done}/{total} steps"
    if run.state == S.RUN_NEEDS_INPUTS:
        missing = ", ".join(f"{k}=…" for k, spec in runbook.inputs.items()
                            if spec.required and k not in run.inputs)
        lines.insert(0, f"*Needs inputs before it can start:* `/runbook run {runbook.id} "
                        f"{context.item.get('ref', '')} {missing}`")
        buttons = []
    elif run.state == S.RUN_COMPLETED:
        head += " · finished"
    elif run.state == S.RUN_STOPPED:
        head += " · stopped"
    body = "\n".join(lines)
    if len(body) > MAX_BODY:
        body = body[: MAX_BODY - 1] + "…"
    inputs = ", ".join(f"{k}={escape(str(v))}" for k, v in run.inputs.items())
    return Message(
        text=head,
        body=body,
        buttons=buttons,
        context=f"pinned {runbook.id} {runbook.version} ({sha256[:12]}) · started by "
                f"{user(run.started_by)}" + (f" · inputs {inputs}" if inputs else ""),
    )


def _title(step: object, context: Context) -> str:
    assert isinstance(step, ManualStep | ApprovalStep | NotifyStep | HttpStep)
    if isinstance(step, HttpStep) and step.title is None:
        return f"{step.request.method} request ({step.id})"
    return _render(step_title(step), context, f"steps.{step.id}.title")


def _render(source: str, context: Context, where: str) -> str:
    try:
        return render_chat(source, context, where=where)
    except RenderError as error:
        return f"({escape(str(error))})"


def _status(runbook: Runbook, index: int, row: RunbookStepRun) -> str:
    step = runbook.steps[index]
    reason = f": {escape(row.reason)}" if row.reason else ""
    if row.state == S.WAITING:
        return "waits for " + (", ".join(runbook.prerequisites(index)) or "the run to start")
    if row.state == S.OPEN and isinstance(step, ApprovalStep):
        given = [a["by"] for a in row.approvals]
        so_far = f"; {len(given)} so far ({', '.join(user(u) for u in given)})" if given else ""
        window = "" if step.expires_after is None else f", within {_hours(step)}"
        return (f"needs {step.min_approvals} approval(s) from {approvers_text(step)}{window}"
                f" (not the person who started the run){so_far}")
    if row.state == S.OPEN:
        return "to do" + (f" ({escape(row.reason)})" if row.reason else "")
    if row.state == S.EXECUTOR:
        return "waiting for the remediation executor"
    if row.state == S.APPROVED:
        return "approved by " + ", ".join(user(a["by"]) for a in row.approvals)
    if row.state == S.DONE and isinstance(step, NotifyStep) and row.actor == S.AUTOMATIC:
        return f"posted to #{step.channel}"
    if row.state == S.BLOCKED:
        return f"blocked{reason}"
    who = user(row.actor) if row.actor and row.actor != S.AUTOMATIC else "automatically"
    verb = {S.DONE: "done", S.SKIPPED: "skipped", S.WORKED_AROUND: "worked around",
            S.REJECTED: "rejected"}.get(row.state, row.state)
    return f"{verb} by {who}{reason}" if who != "automatically" else f"{verb} automatically{reason}"


def _hours(step: ApprovalStep) -> str:
    assert step.expires_after is not None
    return format_duration(step.expires_after)


def _buttons(run_id: int, step: object, row: RunbookStepRun) -> list[Button]:
    value = f"{run_id}:{row.step_id}"
    if row.state != S.OPEN:
        return []
    if isinstance(step, ApprovalStep):
        return [Button(f"Approve: {row.step_id}", "runbook.approve", value, "primary"),
                Button(f"Reject: {row.step_id}", "runbook.reject", value, "danger")]
    return [Button(f"Done: {row.step_id}", "runbook.done", value, "primary"),
            Button(f"Skip: {row.step_id}", "runbook.skip", value)]
