"""Running runbooks on work items: attach, start, move steps, and show progress.

Every change happens in one transaction with its audit event, its timeline
line and the outbox messages that show it (the checklist edited in place, the
card's progress, a line in the item's thread). A run renders only from its
pinned snapshot, never from the file as it is now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from opsloop import audit, outbox
from opsloop.authz import Authorizer
from opsloop.cards import card_key, user
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.errors import (
    ConfigError,
    DomainError,
    IllegalTransition,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from opsloop.messages import Message, escape
from opsloop.models import AuditHead, WorkItem
from opsloop.policy import Policy
from opsloop.runbooks import states as S
from opsloop.runbooks.checklist import StepView, checklist, checklist_key, progress
from opsloop.runbooks.engine import Engine, resolve_inputs, values_from_labels
from opsloop.runbooks.loader import Library, LoadedRunbook
from opsloop.runbooks.models import RunbookRun, RunbookSnapshot, RunbookStepRun
from opsloop.runbooks.pinning import pin, runbook_of
from opsloop.runbooks.redesign import after_bypass
from opsloop.runbooks.schema import ApprovalStep
from opsloop.workitems import ItemEvent, WorkItems, kind_of

CHAT = "chat"
MAX_REASON = 500
_PENDING = "opsloop.runbooks.pending"  # session.info: what on_created leaves for on_posted
_CLOSED = {"closed", "expired", "rejected"}


@dataclass(frozen=True)
class Decision:
    """An approve or reject just applied to an approval step's row (before the run advances)."""

    run: RunbookRun
    runbook: Any
    step: Any  # an ApprovalStep
    row: RunbookStepRun
    item: WorkItem
    actor: str
    verb: str
    at: datetime


@dataclass
class _Denied(Exception):
    action: str
    subject: str
    reason: str


class Runbooks:
    def __init__(self, db: Database, policy: Policy, clock: Clock, authz: Authorizer,
                 library: Library, workitems: WorkItems) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.authz = authz
        self.library = library
        self.items = workitems
        self.engine = Engine(policy)
        # Extension points (the remediation executor uses them):
        # called after an approve/reject is applied to the step row, in the same transaction
        self.decision_hooks: list[Callable[[Session, Decision], None]] = []
        # may refuse a done/skip/workaround of a step: return why, or None
        self.step_guards: list[Callable[[Session, RunbookStepRun, str], str | None]] = []
        # how some steps look in the checklist: step id -> StepView
        self.step_views: list[Callable[[Session, RunbookRun], dict[str, StepView]]] = []
        # what `/runbook run ... --dry-run` adds: (session, runbook, inputs, item, tenants, run or None)
        self.dry_runners: list[Callable[[Session, Any, dict[str, Any], WorkItem, list[str],
                                          RunbookRun | None], list[str]]] = []

    # ------------------------------------------------------------------ attaching (WorkItems hooks)

    def route(self, labels: dict[str, str]) -> str | None:
        """The runbook the routing tree picks: the first matching route that names one."""
        for route in self.policy.routing:
            if route.matches(labels):
                if route.runbook is not None:
                    return route.runbook
                if not route.continue_:
                    return None
        return None

    def on_created(self, session: Session, event: ItemEvent) -> None:
        """Pin and attach the runbook a new item is routed to (or the one `runbook:ID` names)."""
        if event.action != "created":
            return
        item = event.item
        assert item.id is not None
        explicit = item.labels.get("runbook")
        runbook_id = explicit or self.route({**item.labels, "kind": item.kind, "severity": item.severity})
        if runbook_id is None:
            return
        notes: list[str] = []
        run_id = None
        try:
            loaded = self.library.load(runbook_id)
            self._check_status(loaded, notes)
            run = self._create_run(session, item, event.tenants, loaded, {}, event.actor, event.at,
                                   notes, auto=True)
            run_id = run.id
        except (DomainError, ConfigError) as error:
            if explicit:  # the declarer asked for it: refuse the whole declaration, clearly
                raise
            notes.append(f"⚠️ runbook {runbook_id} was not attached: {error}")
        session.info.setdefault(_PENDING, {})[item.id] = (run_id, notes)

    def on_posted(self, session: Session, event: ItemEvent) -> None:
        """Post what on_created attached, now that the item's card (the thread's parent) is queued."""
        if event.action != "created":
            return
        pending = session.info.get(_PENDING, {}).pop(event.item.id, None)
        if pending is None:
            return
        run_id, notes = pending
        for note in notes:
            self.engine.line(session, event.item, event.actor, "runbook", note, event.at)
        if run_id is not None:
            run = session.get(RunbookRun, run_id)
            assert run is not None
            self._post_checklist(session, run, event.item, event.tenants, event.at, new=True)

    def card_fields(self, session: Session, item: WorkItem) -> list[tuple[str, str]]:
        """The card's runbook line: `db-failover 1.2.0 · 3/7 steps`."""
        fields = []
        for run in self.engine.runs(session, item):
            done, total = progress(self.engine.steps(session, run))
            state = {S.RUN_NEEDS_INPUTS: " · needs inputs", S.RUN_COMPLETED: " · finished",
                     S.RUN_STOPPED: " · stopped"}.get(run.state, "")
            version = session.get(RunbookSnapshot, run.snapshot_id)
            fields.append(("Runbook", f"{run.runbook_id} {version.version if version else ''}"
                                      f" · {done}/{total} steps{state}"))
        return fields

    # ------------------------------------------------------------------ starting

    def start(self, *, actor: str, runbook_id: str, ref: str | None, inputs: dict[str, str],
              channel: str | None = None, dry_run: bool = False) -> str:
        """Start `runbook_id` on a work item (or give inputs to the run routing attached)."""
        self._authorize(actor, "runbook.run", ref or runbook_id)
        now = self.clock.now()
        notes: list[str] = []
        with self.db.transaction() as session:
            item = self._item(session, ref, channel)
            if item.state in _CLOSED:
                raise IllegalTransition(f"{item.ref} is {item.state}; a runbook cannot start on it")
            tenants = self.engine.tenants(session, item)
            existing = [r for r in self.engine.runs(session, item)
                        if r.runbook_id == runbook_id and r.state in S.RUN_OPEN]
            if existing and existing[0].state == S.RUN_RUNNING:
                raise IllegalTransition(f"{item.ref} already runs {runbook_id}; its checklist is in "
                                        f"the item's thread (`/runbook status {item.ref}`)")
            if existing:  # routing attached it; the pinned snapshot runs, whatever the file says now
                run = existing[0]
                snapshot = session.get(RunbookSnapshot, run.snapshot_id)
                assert snapshot is not None
                runbook = runbook_of(snapshot)
                values = resolve_inputs(runbook, {**run.inputs, **inputs})
                if dry_run:
                    return "\n".join([f"dry run: inputs are valid for {runbook_id} {runbook.version}; "
                                      "nothing started, nothing called",
                                      *self._dry_run(session, runbook, values, item, tenants, run)])
                run.inputs, run.state, run.started_at, run.started_by = values, S.RUN_RUNNING, now, actor
                session.add(run)
                self.engine.audit(session, actor, "runbook.started", item, now,
                            after={"run": run.id, "runbook": runbook.id, "version": runbook.version,
                                   "inputs": values})
                self.engine.advance(session, run, runbook, item, tenants, now)
                self._post_checklist(session, run, item, tenants, now, new=False)
                line = f"{user(actor)} started runbook {runbook.id} {runbook.version} on {item.ref}"
            else:
                loaded = self.library.load(runbook_id)
                self._check_status(loaded, notes)
                if dry_run:
                    values = resolve_inputs(loaded.runbook, inputs)
                    return "\n".join([f"dry run: inputs are valid for {runbook_id} {loaded.runbook.version}; "
                                      "nothing started, nothing called",
                                      *self._dry_run(session, loaded.runbook, values, item, tenants, None)])
                run = self._create_run(session, item, tenants, loaded, inputs, actor, now, notes, auto=False)
                self._post_checklist(session, run, item, tenants, now, new=True)
                line = f"{user(actor)} started runbook {runbook_id} {loaded.runbook.version} on {item.ref}"
            for note in notes:
                self.engine.line(session, item, actor, "runbook", note, now)
            self.engine.timeline(session, item, actor, "runbook.started", line, now)
            self.items.announce(session, item, tenants, line, now)
        self.items.after_commit()
        return "\n".join([f"Started runbook {runbook_id} on {item.ref}; its checklist is in the thread.",
                          *notes])

    def _dry_run(self, session: Session, runbook: Any, values: dict[str, Any], item: WorkItem,
                 tenants: list[str], run: RunbookRun | None) -> list[str]:
        return [line for report in self.dry_runners
                for line in report(session, runbook, values, item, tenants, run)]

    def _check_status(self, loaded: LoadedRunbook, notes: list[str]) -> None:
        runbook = loaded.runbook
        if runbook.status == "retired":
            raise DomainError(f"runbook {runbook.id} {runbook.version} is retired and cannot start "
                              f"(owners: {', '.join(user(o) for o in runbook.owners)})")
        if runbook.status == "deprecated":
            notes.append(f"⚠️ runbook {runbook.id} {runbook.version} is deprecated; "
                         "ask its owners what replaces it")

    def _create_run(self, session: Session, item: WorkItem, tenants: list[str], loaded: LoadedRunbook,
                    given: dict[str, str], actor: str, now: datetime, notes: list[str],
                    *, auto: bool) -> RunbookRun:
        runbook = loaded.runbook
        assert item.id is not None
        if auto:  # inputs named like the item's labels (service, cluster ...) come from them
            values, missing = values_from_labels(runbook, item.labels)
        else:
            values, missing = resolve_inputs(runbook, given), []
        snapshot, warning = pin(session, loaded, now)
        if warning:
            notes.append(f"⚠️ {warning}")
        assert snapshot.id is not None
        run = RunbookRun(work_item_id=item.id, snapshot_id=snapshot.id, runbook_id=runbook.id,
                         inputs=values, state=S.RUN_NEEDS_INPUTS if missing else S.RUN_RUNNING,
                         started_by=actor, created_at=now, started_at=None if missing else now)
        session.add(run)
        session.flush()
        assert run.id is not None
        for position, step in enumerate(runbook.steps):
            session.add(RunbookStepRun(run_id=run.id, step_id=step.id, position=position,
                                       state=S.WAITING, updated_at=now))
        session.flush()
        self.engine.audit(session, actor, "runbook.attached" if missing else "runbook.started", item, now,
                    after={"run": run.id, "runbook": runbook.id, "version": runbook.version,
                           "sha256": loaded.sha256, "inputs": values,
                           **({"missing_inputs": missing} if missing else {})})
        if not missing:
            self.engine.advance(session, run, runbook, item, tenants, now)
        return run

    # ------------------------------------------------------------------ moving steps

    def locate(self, ref: str, step_id: str) -> int:
        """The open run of `ref` that has a step `step_id` (for typed commands)."""
        with self.db.transaction() as session:
            item = self._item(session, ref, None)
            for run in self.engine.runs(session, item):
                steps = self.engine.steps(session, run)
                if run.state in S.RUN_OPEN and any(s.step_id == step_id for s in steps):
                    assert run.id is not None
                    return run.id
        raise NotFound(f"{ref.upper()} has no running runbook with a step {step_id!r}")

    def ref_of(self, run_id: int) -> str:
        with self.db.transaction() as session:
            run = session.get(RunbookRun, run_id)
            item = session.get(WorkItem, run.work_item_id) if run is not None else None
            if item is None:
                raise NotFound(f"no runbook run {run_id}")
            return item.ref

    def act(self, *, actor: str, run_id: int, step_id: str, verb: str, reason: str | None = None) -> str:
        """done / skip / workaround / approve / reject on one step; returns what happened."""
        if verb not in ("done", "skip", "workaround", "approve", "reject"):
            raise InvalidInput(f"unknown step action {verb!r}")
        reason = " ".join((reason or "").split()) or None
        if verb in ("skip", "workaround") and not reason:
            doing = "skipping" if verb == "skip" else "working around"
            raise InvalidInput(f"say why: {doing} a step needs a reason")
        if reason and len(reason) > MAX_REASON:
            raise InvalidInput(f"the reason is {len(reason)} characters; at most {MAX_REASON}")
        if verb not in ("approve", "reject"):
            self._authorize(actor, "runbook.step", f"runbook-run:{run_id}")
        now = self.clock.now()
        try:
            with self.db.transaction() as session:
                text = self._act(session, actor, run_id, step_id, verb, reason, now)
        except _Denied as denied:
            with self.db.transaction() as session:
                audit.record(session, at=now, actor=actor, action="permission.denied",
                             subject=denied.subject, after={"attempted": denied.action})
            raise PermissionDenied(denied.reason) from None
        self.items.after_commit()
        return text

    def _act(self, session: Session, actor: str, run_id: int, step_id: str, verb: str,
             reason: str | None, now: datetime) -> str:
        # Lock order: the audit chain's head before any other row, as every writer does, so two
        # writers never wait on each other (PostgreSQL would report a deadlock).
        session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
        run = session.exec(select(RunbookRun).where(RunbookRun.id == run_id).with_for_update()).first()
        if run is None:
            raise NotFound(f"no runbook run {run_id}")
        item = session.get(WorkItem, run.work_item_id)
        snapshot = session.get(RunbookSnapshot, run.snapshot_id)
        assert item is not None and snapshot is not None
        runbook = runbook_of(snapshot)
        rows = {s.step_id: s for s in self.engine.steps(session, run)}
        row = rows.get(step_id)
        if row is None:
            raise NotFound(f"runbook {runbook.id} has no step {step_id!r} "
                           f"(steps: {', '.join(rows)})")
        if run.state != S.RUN_RUNNING:
            raise IllegalTransition(f"the {runbook.id} run on {item.ref} is "
                                    f"{run.state.replace('_', ' ')}; its steps cannot change")
        if item.state in _CLOSED:
            raise IllegalTransition(f"{item.ref} is {item.state}; its runbook steps cannot change")
        step = runbook.step(step_id)
        before = row.state
        if verb in ("approve", "reject"):
            line = self._decide(session, run, item, step, row, actor, verb, reason, now)
            for hook in self.decision_hooks:
                hook(session, Decision(run, runbook, step, row, item, actor, verb, now))
        else:
            for guard in self.step_guards:
                refusal = guard(session, row, verb)
                if refusal:
                    raise IllegalTransition(refusal)
            line = self._tick(step, row, actor, verb, reason, now)
        session.add(row)
        self.engine.audit(session, actor, f"runbook.step.{verb}", item, now,
                    before={"run": run.id, "step": step_id, "state": before},
                    after={"run": run.id, "step": step_id, "state": row.state,
                           **({"reason": reason} if reason else {}),
                           **({"approvals": [a["by"] for a in row.approvals]} if row.approvals else {})})
        tenants = self.engine.tenants(session, item)
        self.engine.advance(session, run, runbook, item, tenants, now)
        self._post_checklist(session, run, item, tenants, now, new=False)
        self.engine.timeline(session, item, actor, f"runbook.step.{verb}", line, now)
        self.items.announce(session, item, tenants, line, now)
        if row.state in S.BYPASSED:
            after_bypass(session, self.policy, runbook, step_id, now)
        return line

    def _tick(self, step: Any, row: RunbookStepRun, actor: str, verb: str, reason: str | None,
              now: datetime) -> str:
        if isinstance(step, ApprovalStep):
            raise IllegalTransition(f"step {step.id} is an approval: approve or reject it, "
                                    "it cannot be done or skipped")
        if verb == "done":
            if row.state != S.OPEN:
                raise IllegalTransition(_not_now(row, "done"))
            row.state = S.DONE
        else:  # skip / workaround: also ahead of time, for a step that will not apply
            if row.state not in (S.OPEN, S.WAITING, S.EXECUTOR):
                raise IllegalTransition(_not_now(row, "skipped"))
            row.state = S.SKIPPED if verb == "skip" else S.WORKED_AROUND
        row.actor, row.reason, row.updated_at, row.finished_at = actor, reason, now, now
        said = {"done": "did", "skip": "skipped", "workaround": "worked around"}[verb]
        return f"{user(actor)} {said} step `{step.id}`" + (f": {escape(reason)}" if reason else "")

    def _decide(self, session: Session, run: RunbookRun, item: WorkItem, step: Any, row: RunbookStepRun,
                actor: str, verb: str, reason: str | None, now: datetime) -> str:
        if not isinstance(step, ApprovalStep):
            raise IllegalTransition(f"step {step.id} is not an approval; mark it done or skip it")
        if row.state != S.OPEN:
            raise IllegalTransition(_not_now(row, "decided"))
        if not self.may_approve(actor, step):
            raise _Denied(f"runbook.{verb}", item.ref,
                          f"you may not {verb} step {step.id}: its approvers are "
                          f"{', '.join(step.approvers)}")
        if actor == run.started_by:
            raise _Denied(f"runbook.{verb}", item.ref,
                          f"you started this run, so your {verb} cannot count; ask another approver")
        if verb == "reject":
            row.state, row.actor, row.reason, row.finished_at = S.REJECTED, actor, reason, now
            row.updated_at = now
            return f"{user(actor)} rejected step `{step.id}`" + (f": {escape(reason)}" if reason else "")
        if any(a["by"] == actor for a in row.approvals):
            raise InvalidInput(f"you already approved step {step.id}; it needs another approver")
        row.approvals = [*row.approvals, {"by": actor, "at": now.isoformat()}]
        row.updated_at = now
        count = f"{len(row.approvals)}/{step.min_approvals}"
        if len(row.approvals) >= step.min_approvals:
            row.state, row.actor, row.finished_at = S.APPROVED, actor, now
            return f"{user(actor)} approved step `{step.id}` ({count}): approved"
        return f"{user(actor)} approved step `{step.id}` ({count}); waiting for more approvers"

    def may_approve(self, actor: str, step: ApprovalStep) -> bool:
        for approver in step.approvers:
            if approver.startswith("role:"):
                if self.authz.has_role(actor, approver.removeprefix("role:")):
                    return True
            elif approver.startswith("S"):
                if actor in self.authz.directory.members(approver):
                    return True
            elif approver == actor:
                return True
        return False

    # ------------------------------------------------------------------ reading

    def checklists(self, ref: str) -> list[Message]:
        """The checklist of every run on a work item, newest first."""
        with self.db.transaction() as session:
            item = self._item(session, ref, None)
            tenants = self.engine.tenants(session, item)
            return [self._checklist(session, run, item, tenants) for run in self.engine.runs(session, item)]

    def _checklist(self, session: Session, run: RunbookRun, item: WorkItem, tenants: list[str]) -> Message:
        snapshot = session.get(RunbookSnapshot, run.snapshot_id)
        assert snapshot is not None
        runbook = runbook_of(snapshot)
        rows = self.engine.steps(session, run)
        views = {k: v for read in self.step_views for k, v in read(session, run).items()}
        return checklist(run, runbook, rows, self.engine.context(runbook, run, rows, item, tenants),
                         sha256=snapshot.sha256, views=views)

    def refresh(self, session: Session, run: RunbookRun, item: WorkItem, now: datetime) -> None:
        """Edit the run's checklist in place (after a change made outside `act`)."""
        self._post_checklist(session, run, item, self.engine.tenants(session, item), now, new=False)

    def _post_checklist(self, session: Session, run: RunbookRun, item: WorkItem, tenants: list[str],
                        now: datetime, *, new: bool) -> None:
        assert run.id is not None
        payload = {"message": self._checklist(session, run, item, tenants).to_json()}
        key = checklist_key(run.id)
        if new:
            outbox.enqueue(session, transport=CHAT, target=item.channel or "", now=now, key=key,
                           thread_key=card_key(item.ref), payload=payload)
        else:
            outbox.enqueue(session, transport=CHAT, target=item.channel or "", now=now, update_key=key,
                           lane=f"{CHAT}:{item.channel}", supersede=True, payload=payload)

    def _item(self, session: Session, ref: str | None, channel: str | None) -> WorkItem:
        if ref is not None:
            kind_of(ref)
            item = session.exec(select(WorkItem).where(WorkItem.ref == ref.upper())).first()
            if item is None:
                raise NotFound(f"no work item {ref.upper()}")
            return item
        found = list(session.exec(select(WorkItem).where(
            WorkItem.channel == channel, col(WorkItem.state).not_in(_CLOSED)).limit(2))) if channel else []
        if len(found) != 1:
            raise InvalidInput("name the work item (e.g. INC-3): "
                               + ("several are open in this channel" if found else "none is open here"))
        return found[0]

    # ------------------------------------------------------------------ helpers

    def _authorize(self, actor: str, action: str, subject: str) -> None:
        if self.authz.allowed(actor, action):
            return
        with self.db.transaction() as session:
            audit.record(session, at=self.clock.now(), actor=actor, action="permission.denied",
                         subject=subject.upper() if "-" in subject else subject,
                         after={"attempted": action})
        raise PermissionDenied(f"you may not {action.replace('.', ' ')}: that needs the role "
                               f"{self.authz.explain(action)}")

def _not_now(row: RunbookStepRun, verb: str) -> str:
    return f"step {row.step_id} is {row.state.replace('_', ' ')}; it cannot be {verb} now"

