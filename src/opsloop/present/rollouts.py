"""A rollout in the item's thread: one progress message edited in place, a line for each turn it takes,
and a page to the runbook's owners when it halts."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from opsloop import outbox
from opsloop.events import RolloutChanged
from opsloop.messages import Button, Message, escape, user
from opsloop.outbox import CHAT
from opsloop.present.clocks import human
from opsloop.present.items import Cards, in_card_thread
from opsloop.rollouts import models as M
from opsloop.rollouts.models import Rollout
from opsloop.rollouts.report import RolloutReport
from opsloop.rollouts.service import Rollouts
from opsloop.runbooks.models import RunbookRun
from opsloop.runbooks.pinning import runbook_of, snapshot_of

EDIT_EVERY = timedelta(seconds=2)  # a burst of recorded calls becomes one edit per this
_ICONS = {
    M.SUCCEEDED: "✅",
    M.FAILED: "❌",
    M.UNKNOWN: "❓",
    M.SENDING: "⏳",
    M.PENDING: "🕒",
    M.WAITING: "·",
    M.SKIPPED: "⏭",
    M.ROLLED: "↩️",
    M.RB_FAILED: "❌↩",
    M.RB_UNKNOWN: "❓↩",
    M.RB_PENDING: "🕒↩",
    M.RB_SENDING: "⏳↩",
}
_ORDER = (
    M.SUCCEEDED,
    M.FAILED,
    M.UNKNOWN,
    M.SENDING,
    M.PENDING,
    M.WAITING,
    M.SKIPPED,
    M.RB_PENDING,
    M.RB_SENDING,
    M.ROLLED,
    M.RB_FAILED,
    M.RB_UNKNOWN,
)
_STATE = {
    M.PINNED: "not started",
    M.RUNNING: "running",
    M.PAUSING: "pausing between waves",
    M.APPROVAL: "waiting for approval",
    M.HALTED: "HALTED",
    M.ABORTED: "aborted",
    M.ROLLING_BACK: "rolling back",
    M.ROLLED_BACK: "rolled back",
    M.COMPLETED: "completed",
}
_LINES = {
    "wave": "▶️ {ref} rollout `{step}`: wave {wave} started ({n} tenant(s))",
    "wave_done": "✔️ {ref} rollout `{step}`: wave {wave} finished",
    "approval": "🔐 {ref} rollout `{step}`: wave {wave} waits for approval",
    "pausing": "⏸ {ref} rollout `{step}`: pausing before the next wave",
    "resumed": "▶️ {ref} rollout `{step}` resumed by {actor}",
    "aborted": "⏹ {ref} rollout `{step}` aborted: {note}",
    "rolling_back": "↩️ {ref} rollout `{step}`: {actor} is rolling it back",
    "rolled_back": "↩️ {ref} rollout `{step}` rolled back",
    "completed": "✅ {ref} rollout `{step}` completed",
    "halted": "🛑 {ref} rollout `{step}` HALTED: {note}",
}


def counts_text(counts: dict[str, int]) -> str:
    return " · ".join(f"{_ICONS[s]} {counts[s]} {s.replace('_', ' ')}" for s in _ORDER if counts.get(s))


def progress_message(ref: str, report: RolloutReport) -> Message:
    r = report
    wave_name = r.waves[r.wave].name if r.wave < len(r.waves) else "-"
    head = (
        f"🚚 {ref} rollout `{r.step_id}` · {_STATE.get(r.state, r.state)} · "
        f"wave {min(r.wave + 1, len(r.waves))} of {len(r.waves)} ({escape(wave_name)}) · "
        f"{r.targets} tenant(s)"
    )
    waves = " · ".join(
        f"{'▶ ' if w.current and r.state not in M.ROLLOUT_OVER else ''}{escape(w.name)} "
        f"{w.counts.get(M.SUCCEEDED, 0)}/{w.size}"
        for w in r.waves
    )
    fields = [
        ("Waves", waves or "no tenants matched"),
        ("Tenants", counts_text(r.counts) or "none"),
        ("Error budget", f"{max(r.errors, 0)} of {r.allowed_errors} allowed"),
    ]
    if r.deadline_left is not None:
        due = (
            f"{human(r.deadline_left)} left"
            if r.deadline_left > timedelta(0)
            else f"BREACHED {human(-r.deadline_left)} ago"
        )
        fields.append(("Deadline", due))
    if r.window_waits:
        fields.append(("Maintenance windows", f"⏰ {r.window_waits} wait for their window"))
    if r.state == M.PAUSING and r.next_wave_at is not None:
        fields.append(("Next wave", f"{r.next_wave_at:%H:%M} UTC"))
    if r.state == M.APPROVAL:
        fields.append(
            (
                "Approval",
                f"{r.approvals} of {r.approvals_needed} from {', '.join(escape(a) for a in r.approvers)}",
            )
        )
    lines = []
    if r.halted_reason and r.state == M.HALTED:
        lines.append(f"*Halted:* {escape(r.halted_reason)}")
    lines += [
        f"{_ICONS.get(f.state, '•')} `{f.tenant}` {f.state.replace('_', ' ')}: {escape(f.why[:200])}"
        for f in r.failures
    ]
    return Message(
        text=head,
        fields=fields,
        body="\n".join(lines) or None,
        buttons=buttons(r),
        context=f"`/runbook status {ref}` lists every tenant · `opsloop runbooks rollout {r.run_id} --csv`",
    )


def buttons(r: RolloutReport) -> list[Button]:
    value = str(r.rollout_id)
    if r.state == M.HALTED:
        found = [
            Button("Resume", "rollout.resume", value, "primary"),
            Button("Abort", "rollout.abort", value),
        ]
        if r.rollback:
            found.append(Button("Roll back", "rollout.rollback", value, "danger"))
        return found
    if r.state == M.APPROVAL:
        return [
            Button("Approve wave", "rollout.approve", value, "primary"),
            Button("Reject", "rollout.reject", value, "danger"),
        ]
    if r.state in (M.RUNNING, M.PAUSING):
        return [Button("Abort", "rollout.abort", value, "danger")]
    return []


def progress_key(rollout_id: int) -> str:
    return f"rollout:{rollout_id}"


class RolloutWords:
    def __init__(self, cards: Cards, rollouts: Rollouts) -> None:
        self.cards = cards
        self.rollouts = rollouts

    def changed(self, session: Session, event: RolloutChanged) -> None:
        """The progress message (posted, then edited in place); a line for each turn; a page on a halt."""
        item = event.item
        rollout = session.get(Rollout, event.rollout_id)
        assert rollout is not None
        shown = progress_message(item.ref, self.rollouts.report(session, rollout))
        payload = {"message": shown.to_json()}
        key = progress_key(event.rollout_id)
        in_card_thread(session, ref=item.ref, channel=item.channel or "", key=key, payload=payload,
                       at=event.at, new=event.what == "started", lane=f"{CHAT}:{item.channel}",
                       delay=EDIT_EVERY if event.what == "progress" else timedelta(0))
        template = _LINES.get(event.what)
        if template is not None:
            wave = rollout.waves and event.wave < len(rollout.waves)
            line = template.format(
                ref=item.ref,
                step=event.step_id,
                actor=user(event.actor),
                note=escape(event.note or ""),
                n=len(event.tenants),
                wave=f"{event.wave + 1}" if wave else "-",
            )
            self.cards.story(session, item, event.actor, f"rollout.{event.what}", line, event.at)
            self.cards.say(session, item, line, event.at, broadcast=event.what == "halted")
        if event.what == "halted":
            self._page(session, event, shown)

    def _page(self, session: Session, event: RolloutChanged, shown: Message) -> None:
        """The runbook's owners are paged (a DM each) with the halt and its buttons."""
        run_owners = runbook_of(snapshot_of(session, self._run(session, event))).owners
        page = Message(
            text=f"📟 {shown.text}",
            fields=shown.fields,
            body=shown.body,
            buttons=shown.buttons,
            context=f"you own this runbook · the thread of {event.item.ref} has the details",
        )
        for owner in run_owners:
            outbox.enqueue(
                session,
                transport=CHAT,
                target=owner,
                now=event.at,
                key=f"rollout-page:{event.rollout_id}:{event.at.isoformat()}:{owner}",
                payload={"message": page.to_json()},
            )

    def _run(self, session: Session, event: RolloutChanged) -> RunbookRun:
        run = session.get(RunbookRun, event.run_id)
        assert run is not None
        return run
