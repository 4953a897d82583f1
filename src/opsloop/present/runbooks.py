"""Runbook runs in the item's thread: the checklist, edited as steps move, and what is said about it."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from opsloop import events
from opsloop.messages import Message, user
from opsloop.models import WorkItem
from opsloop.outbox import CHAT
from opsloop.present.checklist import StepView, checklist, checklist_key, step_line
from opsloop.present.items import Cards, in_card_thread
from opsloop.present.remediation import call_buttons, call_status
from opsloop.remediation.models import SUCCEEDED
from opsloop.remediation.service import calls_of
from opsloop.runbooks import states as S
from opsloop.runbooks.models import RunbookRun, RunbookStepRun
from opsloop.runbooks.pinning import runbook_of, snapshot_of
from opsloop.runbooks.runs import Runbooks


class Checklists:
    """Handlers for runbook events, and the checklist of a run as it is now."""

    def __init__(self, cards: Cards, runbooks: Runbooks) -> None:
        self.cards = cards
        self.runbooks = runbooks
        self.engine = runbooks.engine

    # ------------------------------------------------------------------ handlers

    def attached(self, session: Session, event: events.RunAttached) -> None:
        item, at = event.item, event.at
        run = self._run(session, event.run_id)
        if event.by_hand:  # /runbook run: the checklist, what to know about the runbook, who started it
            self._post(session, run, item, at, new=True)
            self._warnings(session, event)
            self._started(session, item, event.actor, event.runbook_id, event.version, at)
        else:  # routing attached it as the item was created: the checklist comes under the new card
            self._warnings(session, event)
            self._post(session, run, item, at, new=True)

    def not_attached(self, session: Session, event: events.RunNotAttached) -> None:
        self._line(session, event.item, event.item.created_by, "runbook",
                   f"⚠️ runbook {event.runbook_id} was not attached: {event.reason}", event.at)

    def started(self, session: Session, event: events.RunStarted) -> None:
        self._post(session, self._run(session, event.run_id), event.item, event.at, new=False)
        self._started(session, event.item, event.actor, event.runbook_id, event.version, event.at)

    def changed(self, session: Session, event: events.RunChanged) -> None:
        self._post(session, self._run(session, event.run_id), event.item, event.at, new=False)

    def finished(self, session: Session, event: events.RunFinished) -> None:
        self._line(session, event.item, S.AUTOMATIC, "runbook",
                   f"Runbook {event.runbook_id} {event.state} on {event.item.ref}", event.at)

    def step(self, session: Session, event: events.StepCompleted | events.ApprovalDecided) -> None:
        """A person's step action: the checklist edited, the line on the timeline, card and thread."""
        item, line = event.item, step_line(event)
        self._post(session, self._run(session, event.run_id), item, event.at, new=False)
        self.cards.story(session, item, event.actor, f"runbook.step.{event.verb}", line, event.at)
        self.cards.refresh(session, item, event.at)
        self.cards.say(session, item, line, event.at)

    # ------------------------------------------------------------------ reading

    def checklist(self, session: Session, run: RunbookRun, item: WorkItem, tenants: list[str]) -> Message:
        """The run's checklist as it is now."""
        snapshot = snapshot_of(session, run)
        runbook = runbook_of(snapshot)
        rows = self.engine.steps(session, run)
        return checklist(run, runbook, rows, self.engine.context(runbook, run, rows, item, tenants),
                         sha256=snapshot.sha256, views=self._views(session, run, rows))

    def of(self, ref: str) -> list[Message]:
        """The checklist of every run on the item, newest first."""
        with self.runbooks.db.transaction() as session:
            item = self.runbooks.find_item(session, ref)
            tenants = self.engine.tenants(session, item)
            return [self.checklist(session, run, item, tenants) for run in self.engine.runs(session, item)]

    def _views(self, session: Session, run: RunbookRun, steps: list[RunbookStepRun]) -> dict[str, StepView]:
        """http steps show their call: its state and its buttons (retry, it succeeded ...); `steps`: the
        run's step rows, as `checklist` just read them."""
        assert run.id is not None
        rows = {r.id: r for r in steps}
        shown: dict[str, StepView] = {}
        for call in calls_of(session, run.id):
            row = rows.get(call.step_run_id)
            if row is None or (row.state != S.EXECUTOR and call.state != SUCCEEDED):
                continue
            shown[call.step_id] = StepView(call_status(call), call_buttons(call, run.id))
        return shown

    # ------------------------------------------------------------------ helpers

    def _run(self, session: Session, run_id: int) -> RunbookRun:
        run = session.get(RunbookRun, run_id)
        assert run is not None
        return run

    def _post(self, session: Session, run: RunbookRun, item: WorkItem, at: datetime, *, new: bool) -> None:
        assert run.id is not None
        shown = self.checklist(session, run, item, self.engine.tenants(session, item))
        payload = {"message": shown.to_json()}
        key = checklist_key(run.id)
        in_card_thread(session, ref=item.ref, channel=item.channel or "", key=key, payload=payload, at=at,
                       new=new, lane=f"{CHAT}:{item.channel}")

    def _warnings(self, session: Session, event: events.RunAttached) -> None:
        for warning in warnings(event):
            self._line(session, event.item, event.actor, "runbook", warning, event.at)

    def _started(self, session: Session, item: WorkItem, actor: str, runbook_id: str, version: str,
                 at: datetime) -> None:
        line = f"{user(actor)} started runbook {runbook_id} {version} on {item.ref}"
        self.cards.story(session, item, actor, "runbook.started", line, at)
        self.cards.refresh(session, item, at)
        self.cards.say(session, item, line, at)

    def _line(self, session: Session, item: WorkItem, actor: str, action: str, line: str,
              at: datetime) -> None:
        """A timeline line that is also said in the item's thread."""
        self.cards.story(session, item, actor, action, line, at)
        self.cards.say(session, item, line, at)


def warnings(event: events.RunAttached) -> list[str]:
    """What to know about the runbook a run was pinned to (in the thread, and in the reply)."""
    about = f"runbook {event.runbook_id} {event.version}"
    found = [f"⚠️ {about} is deprecated; ask its owners what replaces it"] if event.deprecated else []
    if event.repinned is not None:
        found.append(f"⚠️ {about} was changed without raising its version (pinned before as "
                     f"{event.repinned[:12]}, now {event.sha256[:12]}); raise `version` in the file")
    return found
