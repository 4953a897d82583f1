"""Running runbooks on work items: attach, start, and move steps.

Every change happens in one transaction with its audit event and the events
that say what happened (`RunAttached`, `StepOpened`, `StepCompleted`,
`ApprovalDecided`, `RunFinished` ...); the presenters in the table show them
(the checklist edited in place, the card's progress, a line in the thread).
A run renders only from its pinned snapshot, never from the file as it is now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from opsloop.bus import Bus
from opsloop.errors import ConfigError, DomainError, IllegalTransition, InvalidInput, NotFound
from opsloop.events import (
    ApprovalDecided,
    ItemChanged,
    ItemCreated,
    RunAttached,
    RunNotAttached,
    RunStarted,
    StepCompleted,
)
from opsloop.messages import user
from opsloop.models import WorkItem
from opsloop.routing import route
from opsloop.runbooks import states as S
from opsloop.runbooks import steps
from opsloop.runbooks.engine import Engine, resolve_inputs, values_from_labels
from opsloop.runbooks.loader import Library, LoadedRunbook
from opsloop.runbooks.models import RunbookRun, RunbookStepRun
from opsloop.runbooks.pinning import pin, runbook_of, snapshot_of
from opsloop.runbooks.schema import ApprovalStep, Runbook
from opsloop.service import Service
from opsloop.workitems import kind_of

MAX_REASON = 500
_CLOSED = {"closed", "expired", "rejected"}


@dataclass(frozen=True)
class RunProgress:
    """How far a run is, for the card: `db-failover 1.2.0 · 3/7 steps`."""

    runbook_id: str
    version: str
    done: int
    total: int
    state: str


@dataclass(frozen=True)
class Plan:
    """What `/runbook run` would start (for a dry run): the item, the runbook and its inputs."""

    item: WorkItem
    tenants: list[str]
    runbook: Runbook
    inputs: dict[str, Any]
    run: RunbookRun | None  # the run routing attached, if it waits for these inputs


@dataclass(eq=False)
class Runbooks(Service):
    library: Library
    bus: Bus

    @cached_property
    def engine(self) -> Engine:
        return Engine(self.policy, self.bus)

    # ------------------------------------------------------------------ attaching (an ItemCreated handler)

    def attach(self, session: Session, event: ItemCreated) -> None:
        """Pin and attach the runbook a new item is routed to (or the one `runbook:ID` names)."""
        item = event.item
        explicit = item.labels.get("runbook")
        runbook_id = explicit or route(self.policy, {**item.labels, "kind": item.kind,
                                                     "severity": item.severity}).runbook
        if runbook_id is None:
            return
        try:
            loaded = self._startable(self.library.load(runbook_id))
            run, repinned = self._create_run(session, item, list(event.tenants), loaded, {}, event.actor,
                                             event.at, auto=True)
        except (DomainError, ConfigError) as error:
            if explicit:  # the declarer asked for it: refuse the whole declaration, clearly
                raise
            self.bus.publish(session, RunNotAttached(at=event.at, item=item, runbook_id=runbook_id,
                                                     reason=str(error)))
            return
        attached = _attached(run, item, loaded, event.actor, event.at, repinned, by_hand=False)
        self.bus.publish(session, attached)

    def progress(self, session: Session, item: WorkItem) -> list[RunProgress]:
        """Every run on the item, newest first."""
        found = []
        for run in self.engine.runs(session, item):
            done, total = steps.progress(self.engine.steps(session, run))
            version = snapshot_of(session, run).version
            found.append(RunProgress(run.runbook_id, version, done, total, run.state))
        return found

    def open_steps(self, session: Session, item: WorkItem) -> list[str]:
        """The steps of the item's unfinished runs that nobody has finished, skipped or decided."""
        return [row.step_id for run in self.engine.runs(session, item) if run.state in S.RUN_OPEN
                for row in self.engine.steps(session, run) if row.state not in S.TERMINAL]

    def refuse_close_with_open_steps(self, session: Session, event: ItemChanged) -> None:
        """(an `ItemChanged` handler) An item is not closed while runbook steps are open, unless a person
        forces it and says why: then the steps left open are on the record."""
        if event.action != "close":
            return
        left = self.open_steps(session, event.item)
        if not left:
            return
        ref = event.item.ref
        if not event.forced:
            raise InvalidInput(f"{ref} still has runbook steps open: {', '.join(left)}. Finish or skip them "
                               f"(`/runbook done|skip {ref} STEP`), or close it anyway with "
                               f'`--force "reason"`')
        if not event.note:
            raise InvalidInput(f'closing {ref} with runbook steps open needs a reason: --force "reason"')
        self.engine.audit(session, event.actor, "runbook.close_forced", event.item, event.at,
                          after={"open_steps": left, "reason": event.note})

    # ------------------------------------------------------------------ starting

    def start(self, *, actor: str, runbook_id: str, ref: str | None, inputs: dict[str, str],
              channel: str | None = None) -> RunAttached | RunStarted:
        """Start `runbook_id` on a work item (or give inputs to the run routing attached)."""
        self.authz.require(actor, "runbook.run", subject=_subject(ref, runbook_id))
        now = self.clock.now()
        with self.db.transaction() as session:
            item, tenants, waiting = self._starting(session, runbook_id, ref, channel)
            if waiting is not None:  # routing attached it; the pinned snapshot runs, whatever the file says
                runbook = runbook_of(snapshot_of(session, waiting))
                values = resolve_inputs(runbook, {**waiting.inputs, **inputs})
                waiting.inputs, waiting.state, waiting.started_at = values, S.RUN_RUNNING, now
                waiting.started_by = actor
                session.add(waiting)
                self.engine.audit(session, actor, "runbook.started", item, now,
                                  after={"run": waiting.id, "runbook": runbook.id, "version": runbook.version,
                                         "inputs": values})
                self.engine.advance(session, waiting, runbook, item, tenants, now)
                assert waiting.id is not None
                started: RunAttached | RunStarted = RunStarted(
                    at=now, item=item, run_id=waiting.id, runbook_id=runbook.id, version=runbook.version,
                    actor=actor)
            else:
                loaded = self._startable(self.library.load(runbook_id))
                run, repinned = self._create_run(session, item, tenants, loaded, inputs, actor, now,
                                                 auto=False)
                started = _attached(run, item, loaded, actor, now, repinned, by_hand=True)
            self.bus.publish(session, started)
        return started

    def plan(self, *, actor: str, runbook_id: str, ref: str | None, inputs: dict[str, str],
             channel: str | None = None) -> Plan:
        """What `start` would run, checked but not started (`/runbook run ... --dry-run`)."""
        self.authz.require(actor, "runbook.run", subject=_subject(ref, runbook_id))
        with self.db.transaction() as session:
            item, tenants, waiting = self._starting(session, runbook_id, ref, channel)
            if waiting is not None:
                runbook = runbook_of(snapshot_of(session, waiting))
                values = resolve_inputs(runbook, {**waiting.inputs, **inputs})
                return Plan(item, tenants, runbook, values, waiting)
            runbook = self._startable(self.library.load(runbook_id)).runbook
            return Plan(item, tenants, runbook, resolve_inputs(runbook, inputs), None)

    def _starting(self, session: Session, runbook_id: str, ref: str | None,
                  channel: str | None) -> tuple[WorkItem, list[str], RunbookRun | None]:
        """The item a run would start on, its tenants, and the run of `runbook_id` waiting for inputs."""
        item = self.find_item(session, ref, channel)
        if item.state in _CLOSED:
            raise IllegalTransition(f"{item.ref} is {item.state}; a runbook cannot start on it")
        existing = [r for r in self.engine.runs(session, item)
                    if r.runbook_id == runbook_id and r.state in S.RUN_OPEN]
        if existing and existing[0].state == S.RUN_RUNNING:
            raise IllegalTransition(f"{item.ref} already runs {runbook_id}; its checklist is in "
                                    f"the item's thread (`/runbook status {item.ref}`)")
        return item, self.engine.tenants(session, item), existing[0] if existing else None

    def _startable(self, loaded: LoadedRunbook) -> LoadedRunbook:
        runbook = loaded.runbook
        if runbook.status == "retired":
            raise DomainError(f"runbook {runbook.id} {runbook.version} is retired and cannot start "
                              f"(owners: {', '.join(user(o) for o in runbook.owners)})")
        return loaded

    def _create_run(self, session: Session, item: WorkItem, tenants: list[str], loaded: LoadedRunbook,
                    given: dict[str, str], actor: str, now: datetime, *,
                    auto: bool) -> tuple[RunbookRun, str | None]:
        """The new run (started, unless routing attached it without its inputs), and the sha256 this
        version was pinned with before, if that was other content."""
        runbook = loaded.runbook
        assert item.id is not None
        if auto:  # inputs named like the item's labels (service, cluster ...) come from them
            values, missing = values_from_labels(runbook, item.labels)
        else:
            values, missing = resolve_inputs(runbook, given), []
        snapshot, repinned = pin(session, loaded, now)
        assert snapshot.id is not None
        run = RunbookRun(work_item_id=item.id, snapshot_id=snapshot.id, runbook_id=runbook.id,
                         inputs=values, state=S.RUN_NEEDS_INPUTS if missing else S.RUN_RUNNING,
                         started_by=actor, created_at=now, started_at=None if missing else now)
        session.add(run)
        session.flush()
        assert run.id is not None
        # One multi-row INSERT ... RETURNING hands `advance` the rows it moves, as objects of this session
        # (not an INSERT per step, nor a SELECT of what was just written). The rows are plain dicts:
        # building a RunbookStepRun each only to dump it was a quarter of attaching (pydantic inspects
        # the `list` default factory's signature on every construction).
        rows = list(session.scalars(insert(RunbookStepRun).returning(RunbookStepRun), [
            {"run_id": run.id, "step_id": step.id, "position": position, "state": S.WAITING,
             "outputs": {}, "approvals": [], "updated_at": now}
            for position, step in enumerate(runbook.steps)])) if runbook.steps else []
        self.engine.audit(session, actor, "runbook.attached" if missing else "runbook.started", item, now,
                          after={"run": run.id, "runbook": runbook.id, "version": runbook.version,
                                 "sha256": loaded.sha256, "inputs": values,
                                 **({"missing_inputs": missing} if missing else {})})
        if not missing:
            self.engine.advance(session, run, runbook, item, tenants, now, step_rows=rows)
        return run, repinned

    # ------------------------------------------------------------------ moving steps

    def locate(self, ref: str, step_id: str) -> int:
        """The open run of `ref` that has a step `step_id` (for typed commands)."""
        with self.db.transaction() as session:
            item = self.find_item(session, ref, None)
            for run in self.engine.runs(session, item):
                rows = self.engine.steps(session, run)
                if run.state in S.RUN_OPEN and any(s.step_id == step_id for s in rows):
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

    def act(self, *, actor: str, run_id: int, step_id: str, verb: str,
            reason: str | None = None) -> StepCompleted | ApprovalDecided:
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
            self.authz.require(actor, "runbook.step", subject=f"runbook-run:{run_id}")
        now = self.clock.now()
        try:
            with self.db.transaction() as session:
                event = steps.act(self, session, actor, run_id, step_id, verb, reason, now)
                self.bus.publish(session, event)
        except steps.Refused as refused:
            raise self.authz.refuse(actor, refused.action, subject=refused.subject,
                                    reason=refused.reason) from None
        return event

    def follow_decision(self, session: Session, event: ItemChanged) -> None:
        """An exception approved or rejected: its runbooks' approval steps are that same decision."""
        if event.item.kind == "exception" and event.action in ("approve", "reject"):
            for decided in steps.decide_with_item(self, session, event.item, event.actor, event.action,
                                                  event.note, event.at):
                self.bus.publish(session, decided)

    def decides_with_item(self, run_id: int, step_id: str) -> str | None:
        """The exception whose own decision this approval step is (None: the step decides itself)."""
        with self.db.transaction() as session:
            run = session.get(RunbookRun, run_id)
            item = session.get(WorkItem, run.work_item_id) if run is not None else None
            if run is None or item is None or item.kind != "exception":
                return None
            is_gate = isinstance(runbook_of(snapshot_of(session, run)).step(step_id), ApprovalStep)
            return item.ref if is_gate else None

    def may_approve(self, actor: str, approvers: list[str]) -> bool:
        for approver in approvers:
            if approver.startswith("role:"):
                if self.authz.has_role(actor, approver.removeprefix("role:")):
                    return True
            elif approver.startswith("S"):
                if actor in self.authz.directory.members(approver):
                    return True
            elif approver == actor:
                return True
        return False

    def people(self, approvers: list[str], *, besides: str) -> list[str]:
        """Everyone `approvers` (role:NAME, a user group, a user id) names now, but `besides` (who
        started the run and so cannot count): whom an approval gate asks by name."""
        found: list[str] = []
        for approver in approvers:
            if approver.startswith("role:"):
                members = self.policy.roles.get(approver.removeprefix("role:"), [])
            else:
                members = [approver]
            for member in members:
                people = sorted(self.authz.members(member)) if member.startswith("S") else [member]
                found += [p for p in people if p not in found and p != besides]
        return found

    # ------------------------------------------------------------------ helpers

    def find_item(self, session: Session, ref: str | None, channel: str | None = None) -> WorkItem:
        """The item named, or else the one item open in `channel`."""
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


def _attached(run: RunbookRun, item: WorkItem, loaded: LoadedRunbook, actor: str, at: datetime,
              repinned: str | None, *, by_hand: bool) -> RunAttached:
    assert run.id is not None
    return RunAttached(at=at, item=item, run_id=run.id, runbook_id=loaded.runbook.id,
                       version=loaded.runbook.version, sha256=loaded.sha256, actor=actor,
                       deprecated=loaded.runbook.status == "deprecated", repinned=repinned, by_hand=by_hand)


def _subject(ref: str | None, runbook_id: str) -> str:
    return ref.upper() if ref else f"runbook:{runbook_id}"
