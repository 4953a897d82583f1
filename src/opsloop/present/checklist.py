"""How a run reads: its checklist (one message in the item's thread, edited as steps move), its line on
the card, and what people's step actions say."""

from __future__ import annotations

from dataclasses import dataclass, field

from opsloop.durations import format_duration
from opsloop.events import ApprovalDecided, StepCompleted
from opsloop.messages import Button, Message, escape, target, user
from opsloop.runbooks import states as S
from opsloop.runbooks.models import RunbookRun, RunbookStepRun
from opsloop.runbooks.render import Context, RenderError, render_chat
from opsloop.runbooks.runs import RunProgress
from opsloop.runbooks.schema import ApprovalStep, HttpStep, ManualStep, NotifyStep, Runbook, step_title
from opsloop.runbooks.steps import progress

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


def approvers_text(step: ApprovalStep) -> str:
    return " or ".join(target(a) for a in step.approvers)


def card_fields(runs: list[RunProgress]) -> list[tuple[str, str]]:
    """The card's runbook line: `db-failover 1.2.0 · 3/7 steps`."""
    return [("Runbook", f"{run.runbook_id} {run.version} · {run.done}/{run.total} steps"
                        + {S.RUN_NEEDS_INPUTS: " · needs inputs", S.RUN_COMPLETED: " · finished",
                           S.RUN_STOPPED: " · stopped"}.get(run.state, "")) for run in runs]


def step_line(event: StepCompleted | ApprovalDecided) -> str:
    """What a person's step action says, in the thread and as the answer to them."""
    actor, step = user(event.actor), event.step_id
    why = f": {escape(event.reason)}" if event.reason else ""
    if isinstance(event, StepCompleted):
        said = {"done": "did", "skip": "skipped", "workaround": "worked around"}[event.verb]
        return f"{actor} {said} step `{step}`{why}"
    if event.verb == "reject":
        return f"{actor} rejected step `{step}`{why}"
    count = f"{event.approvals}/{event.needed}"
    if event.after == S.APPROVED:
        return f"{actor} approved step `{step}` ({count}): approved"
    return f"{actor} approved step `{step}` ({count}); waiting for more approvers"


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
