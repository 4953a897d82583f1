"""A play in words: its checklist card (DMed to its owner, edited in place), reminders, list lines."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from opsloop.durations import format_duration
from opsloop.health.models import HealthPlayStep
from opsloop.messages import Button, Message, escape

if TYPE_CHECKING:  # plays imports this module to word what it does
    from opsloop.health.plays import PlayView


def when(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%a %d %b %H:%M")


def checklist_line(step: HealthPlayStep, zone: ZoneInfo, now: datetime) -> str:
    if step.done_at is not None:
        late = " (late)" if step.done_at > step.due_at else ""
        done = f"done {when(step.done_at, zone)} by <@{step.done_by}>{late}"
        return f"✅ {step.position + 1}. {escape(step.title)} — {done}"
    mark = "⚠️" if step.due_at <= now else "☐"
    status = ("overdue since " if step.due_at <= now else "due ") + when(step.due_at, zone)
    return f"{mark} {step.position + 1}. {escape(step.title)} — {status}"


def headline(view: PlayView, now: datetime) -> str:
    play = view.play
    done = sum(1 for s in view.steps if s.done_at is not None)
    state = f"closed: {play.outcome}" if play.closed_at else f"{done}/{len(view.steps)} steps done"
    late = sum(1 for s in view.steps if s.done_at is None and s.due_at <= now)
    late_text = f" · {late} overdue" if late and not play.closed_at else ""
    return (f"▶️ {view.ref} · {escape(view.account.name)} · {play.playbook_id} {play.playbook_version} · "
            f"{state}{late_text}")


def card(view: PlayView, now: datetime, *, for_owner: bool = True) -> Message:
    """The play's checklist: Done buttons for open steps and Close for its owner."""
    play = view.play
    zone = view.zone
    body = "\n".join(checklist_line(s, zone, now) for s in view.steps)
    if play.closed_at is not None:
        body += f"\n*Outcome: {play.outcome}* — {escape(play.note or '')} (<@{play.closed_by}>, " \
                f"{when(play.closed_at, zone)})"
    buttons: list[Button] = []
    if for_owner and play.closed_at is None:
        buttons = [Button(f"Done {s.position + 1}", "health.step", f"{play.id}:{s.step_id}")
                   for s in view.steps if s.done_at is None]
        buttons.append(Button("Close with outcome…", "health.close", str(play.id), "primary"))
    renewal = view.account.renewal_date
    return Message(
        text=headline(view, now),
        fields=[("Owner", f"<@{play.owner}>"),
                ("Opened", f"{when(play.opened_at, zone)} at score {play.score}"),
                ("ARR", f"${view.account.arr:,}"), ("Renewal", renewal.isoformat() if renewal else "—")],
        body=body,
        buttons=buttons,
        context=(f"Due times are working time on the business calendar ({zone.key}). "
                 f"`/health done {view.ref} STEP` · `/health close {view.ref} OUTCOME \"note\"`"
                 + (f" · ⚠️ {view.warning}" if view.warning else "")),
    )


def reminder(view: PlayView, step: HealthPlayStep, stage: str, now: datetime) -> Message:
    if stage == "soon":
        text = (f"⏰ {view.ref} {escape(view.account.name)}: “{escape(step.title)}” is due "
                f"{when(step.due_at, view.zone)}")
    elif now - step.due_at < timedelta(minutes=1):
        text = f"⚠️ {view.ref} {escape(view.account.name)}: “{escape(step.title)}” is due now"
    else:
        late = format_duration(timedelta(minutes=(now - step.due_at) // timedelta(minutes=1)))
        text = (f"⚠️ {view.ref} {escape(view.account.name)}: “{escape(step.title)}” is overdue by {late} "
                f"(due {when(step.due_at, view.zone)})")
    assert view.play.id is not None
    done = Button("Done", "health.step", f"{view.play.id}:{step.step_id}", "primary")
    return Message(text=text, buttons=[done],
                   context=f"`/health play {view.ref}` for the checklist")


def list_line(view: PlayView, now: datetime) -> str:
    late = [s for s in view.steps if s.done_at is None and s.due_at <= now]
    nxt = next((s for s in view.steps if s.done_at is None), None)
    tail = (f"{len(late)} overdue (since {when(late[0].due_at, view.zone)})" if late
            else f"next: {escape(nxt.title)} by {when(nxt.due_at, view.zone)}" if nxt else "all steps done")
    done = sum(1 for s in view.steps if s.done_at is not None)
    return (f"{'⚠️' if late else '▶️'} *{view.ref}* {escape(view.account.name)} · {view.play.playbook_id} · "
            f"<@{view.play.owner}> · {done}/{len(view.steps)} · {tail}")
