"""The redesign trigger: a step people keep bypassing is a step that is wrong.

When one step of a runbook is skipped or worked around by people (automatic
skips of a false `when` do not count) more than `threshold` times within
`window`, the runbook's owners get one notice with the evidence. It fires at
the crossing: when the count in the window becomes `threshold + 1`; it can
fire again only after the count has dropped back to the threshold or below.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from opsloop import audit, outbox
from opsloop.durations import format_duration
from opsloop.events import StepCompleted
from opsloop.messages import Message, escape, user
from opsloop.models import WorkItem
from opsloop.outbox import CHAT
from opsloop.policy import Policy
from opsloop.runbooks import states as S
from opsloop.runbooks.models import RunbookRun, RunbookSnapshot, RunbookStepRun
from opsloop.runbooks.pinning import runbook_of, snapshot_of
from opsloop.runbooks.schema import Runbook


class RedesignWatch:
    """A `StepCompleted` handler: counts bypasses of the step, tells the owners at the crossing."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def after_bypass(self, session: Session, event: StepCompleted) -> None:
        if event.after not in S.BYPASSED or self.policy.runbooks.redesign is None:
            return
        run = session.get(RunbookRun, event.run_id)
        assert run is not None
        after_bypass(session, self.policy, runbook_of(snapshot_of(session, run)), event.step_id, event.at)


def after_bypass(session: Session, policy: Policy, runbook: Runbook, step_id: str, now: datetime) -> bool:
    """Call in the transaction that bypassed a step; returns True when a notice was queued."""
    rule = policy.runbooks.redesign
    if rule is None:
        return False
    # one writer per runbook at a time, so two bypasses at once cannot both see the crossing
    session.exec(select(RunbookSnapshot.id).where(RunbookSnapshot.runbook_id == runbook.id)
                 .with_for_update()).all()
    rows = session.exec(
        select(RunbookStepRun, WorkItem.ref)
        .join(RunbookRun, col(RunbookRun.id) == col(RunbookStepRun.run_id))
        .join(WorkItem, col(WorkItem.id) == col(RunbookRun.work_item_id))
        .where(
            RunbookRun.runbook_id == runbook.id,
            RunbookStepRun.step_id == step_id,
            col(RunbookStepRun.state).in_(S.BYPASSED),
            col(RunbookStepRun.actor) != S.AUTOMATIC,
            col(RunbookStepRun.finished_at) > now - rule.window,
        )
        .order_by(col(RunbookStepRun.finished_at), col(RunbookStepRun.id))
    ).all()
    if len(rows) != rule.threshold + 1:
        return False
    first_id = rows[0][0].id
    evidence = [
        f"• {ref}: {'skipped' if row.state == S.SKIPPED else 'worked around'} by {user(row.actor)}"
        f" on {row.finished_at:%Y-%m-%d}: {escape(row.reason or '')}"
        for row, ref in rows
    ]
    message = Message(
        text=f"🛠 Runbook *{escape(runbook.title)}* ({runbook.id}): step `{step_id}` was bypassed "
             f"{len(rows)} times in the last {format_duration(rule.window)}; it may need a redesign",
        body="\n".join(evidence),
        context="owners: " + ", ".join(user(o) for o in runbook.owners)
                + " · a step people routinely skip or work around is usually wrong, not the people",
    )
    key = f"redesign:{runbook.id}:{step_id}:{first_id}"
    targets = ([policy.channel(rule.channel)] if rule.channel is not None
               else [o for o in runbook.owners if not o.startswith("S")] or [policy.channel("ops")])
    for target in targets:
        outbox.enqueue(session, transport=CHAT, target=target, now=now,
                       key=f"{key}:{target}", payload={"message": message.to_json()})
    audit.record(session, at=now, actor=S.AUTOMATIC, action="runbook.redesign_requested",
                 subject=f"runbook:{runbook.id}",
                 after={"step": step_id, "count": len(rows), "window": format_duration(rule.window),
                        "items": [ref for _, ref in rows], "notified": targets})
    return True
