"""Maintenance windows (`MNT-n`): planned work that pages no one.

A window names the alerts it covers with Alertmanager matchers and runs from
its start to its end. Scheduled by someone allowed `maintenance.schedule`, it
is `scheduled` and becomes `active` at its start; with
`maintenance.require_approval` it is `requested` until another person allowed
`maintenance.approve` approves it. While it holds (from its start to its end,
scheduled or active), a matching alert is recorded on the window and opens no
incident (`opsloop.intake.held`); at its start the clocks of open items it
matches are paused, and an item it matches opened during it starts paused.
When it ends (its `maintenance.end` timer, or someone ending it early), the
alerts it held that still fire open incidents through routing and page as
usual, once; the clocks it paused are resumed. Nothing is deleted; every step
is a lifecycle change or an audit event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.errors import InvalidInput
from opsloop.events import ItemChanged, ItemCreated
from opsloop.intake.service import Intake
from opsloop.lifecycle import OPEN_STATES, refusal
from opsloop.maintenance.matchers import Matcher, check_set, from_json, match_all, parse_matcher
from opsloop.maintenance.models import MaintenanceWindow, open_windows
from opsloop.maintenance.silences import Silences
from opsloop.models import WorkItem
from opsloop.oncall import parse_moment
from opsloop.service import Service
from opsloop.sla.models import PAUSED, RUNNING
from opsloop.sla.service import Sla
from opsloop.timers.models import Timer
from opsloop.types import OPSLOOP, Kind, Severity, State
from opsloop.workitems import WorkItems

START, END = "maintenance.start", "maintenance.end"
PAST = timedelta(minutes=1)  # `from 14:00` typed at 14:00:30 is not refused as the past
_ENDABLE = (State.REQUESTED.value, State.SCHEDULED.value, State.ACTIVE.value)
_WATCHED = tuple(s.value for kind in (Kind.INCIDENT, Kind.ESCALATION) for s in OPEN_STATES[kind])


@dataclass
class Outcome:
    item: WorkItem
    window: MaintenanceWindow
    mirrored: list[str] = field(default_factory=list)  # the Alertmanagers that hold it as a silence
    problems: list[str] = field(default_factory=list)  # those that could not


@dataclass(eq=False)
class Maintenance(Service):
    items: WorkItems
    intake: Intake
    sla: Sla
    silences: Silences

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.policy.timezone)  # ZoneInfo keeps one instance per key

    # ------------------------------------------------------------------ commands

    def schedule(self, *, actor: str, what: str, matchers: list[str], starts: str | None, until: str,
                 tenants: Sequence[str] = ()) -> Outcome:
        """A window from `starts` (default now) until `until` (times as `/oncall override` takes them;
        a relative `until` counts from the start)."""
        self.authz.require(actor, "maintenance.schedule", subject="maintenance")
        found = check_set(parse_matcher(m) for m in matchers)
        now = self.clock.now()
        begins = parse_moment(starts or "now", now, self.zone)
        ends = parse_moment(until, begins, self.zone)
        if begins < now - PAST:
            raise InvalidInput("the window would start in the past; give `from now` or a later time")
        if ends <= begins:
            raise InvalidInput("the window would end before it starts; give a later `until`")
        longest = self.policy.maintenance.max_length
        if ends - begins > longest:
            raise InvalidInput(f"the window is longer than maintenance.max_length ({longest}); "
                               "schedule a shorter one, or several")
        approval = self.policy.maintenance.require_approval
        with self.db.transaction() as session:
            audit.lock_chain(session)
            item = self.items.create_in(
                session, Kind.MAINTENANCE, actor=actor, title=what, severity=Severity.SEV4, tenants=tenants,
                labels={"starts_at": begins.isoformat(), "ends_at": ends.isoformat(),
                        "matchers": " ".join(str(m) for m in found)},
                owner=actor, channel="ops", state=State.REQUESTED if approval else State.SCHEDULED)
            assert item.id is not None
            window = MaintenanceWindow(work_item_id=item.id, matchers=[m.to_json() for m in found],
                                       starts_at=begins, ends_at=ends)
            session.add(window)
            audit.record(session, at=now, actor=actor, action="maintenance.scheduled", subject=item.ref,
                         after={"matchers": window.matchers, "starts_at": begins, "ends_at": ends,
                                "needs_approval": approval})
            session.add(Timer(kind=END, due_at=ends, work_item_id=item.id, payload={"ref": item.ref},
                              created_at=now))  # a window still waiting for approval at its end ends too
            if not approval:
                self._arm(session, item, window, now)
        return self._mirror(item, window, actor) if not approval else Outcome(item, window)

    def approve(self, *, actor: str, ref: str, note: str | None = None) -> Outcome:
        return self._decide(actor, ref, "approve", note)

    def reject(self, *, actor: str, ref: str, note: str | None = None) -> Outcome:
        return self._decide(actor, ref, "reject", note)

    def _decide(self, actor: str, ref: str, action: str, note: str | None) -> Outcome:
        self.authz.require(actor, f"maintenance.{action}", subject=ref)
        with self.db.transaction() as session:
            audit.lock_chain(session)
            item = self._locked(session, ref)
            why = refusal(item, actor, action)
            if why is None and action == "approve" and self.window(session, item).ends_at <= self.clock.now():
                raise InvalidInput(f"{item.ref} would have ended already; schedule a new window")
            if why is None:
                self.items.act_in(session, item, actor=actor, action=action, note=note)
                window = self.window(session, item)
                if action == "approve":
                    self._arm(session, item, window, self.clock.now())
        if why is not None:
            raise self.authz.refuse(actor, f"maintenance.{action}", subject=item.ref, reason=why,
                                    detail={"reason": why})
        return self._mirror(item, window, item.created_by) if action == "approve" else Outcome(item, window)

    def end(self, *, actor: str, ref: str, note: str | None = None) -> Outcome:
        """End a window now (never deleted): what it held that still fires opens incidents."""
        with self.db.transaction() as session:
            created_by = self._locked(session, ref).created_by
        self.authz.require(actor, "maintenance.end", subject=ref, owners=(created_by,),
                           owner_is="having scheduled it")
        with self.db.transaction() as session:
            audit.lock_chain(session)
            item = self._locked(session, ref)
            self.items.act_in(session, item, actor=actor, action="end", note=note)
            window = self.window(session, item)
        outcome = Outcome(item, window)
        outcome.problems = self.silences.expire(window.silences) if window.silences else []
        if outcome.problems:
            self._audit(item.ref, "maintenance.silence_failed", {"expire": outcome.problems})
        return outcome

    # ------------------------------------------------------------------ handlers

    def on_created(self, session: Session, event: ItemCreated) -> None:
        """An incident or escalation opened while a window it matches holds starts with paused clocks."""
        item = event.item
        if item.kind not in (Kind.INCIDENT.value, Kind.ESCALATION.value):
            return
        windows = open_windows(session, event.at)
        found = next((w for w in windows for labels in _labels(item, list(event.tenants))
                      if w.holds(labels, event.at)), None)
        if found is not None:
            row = session.get(MaintenanceWindow, found.work_item_id, with_for_update=True)
            assert row is not None
            self._pause(session, found.ref, row, item)

    def follow(self, session: Session, event: ItemChanged) -> None:
        """A window that starts pauses the clocks it matches; one that ends releases what it held."""
        item = event.item
        if item.kind != Kind.MAINTENANCE.value or event.action not in ("start", "end"):
            return
        window = self.window(session, item, lock=True)
        if event.action == "start":
            self._pause_matching(session, item, window)
        else:
            self._finish(session, item, window, event.at)

    # ------------------------------------------------------------------ timers

    def on_start(self, session: Session, timer: Timer, now: datetime) -> str:
        item = session.get(WorkItem, timer.work_item_id, with_for_update=True) if timer.work_item_id else None
        if item is None or item.state != State.SCHEDULED.value:
            return f"skipped: {item.state if item else 'gone'}"
        self.items.act_in(session, item, actor=OPSLOOP, action="start", note="its start time came")
        return "fired"

    def on_end(self, session: Session, timer: Timer, now: datetime) -> str:
        item = session.get(WorkItem, timer.work_item_id, with_for_update=True) if timer.work_item_id else None
        if item is None or item.state not in _ENDABLE:
            return f"skipped: {item.state if item else 'gone'}"
        self.items.act_in(session, item, actor=OPSLOOP, action="end", note="its end time came")
        return "fired"

    # ------------------------------------------------------------------ reading

    def _locked(self, session: Session, ref: str) -> WorkItem:
        item = self.items.lock(session, ref)
        if item.kind != Kind.MAINTENANCE.value:
            raise InvalidInput(f"{item.ref} is no maintenance window (MNT-n)")
        return item

    def window(self, session: Session, item: WorkItem, *, lock: bool = False) -> MaintenanceWindow:
        row = session.get(MaintenanceWindow, item.id, with_for_update=lock)
        assert row is not None, f"{item.ref} has no window row"
        return row

    def matchers(self, window: MaintenanceWindow) -> list[Matcher]:
        return from_json(window.matchers)

    def local(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M %Z")

    # ------------------------------------------------------------------ helpers

    def _arm(self, session: Session, item: WorkItem, window: MaintenanceWindow, now: datetime) -> None:
        """A scheduled window starts now, or at its start (a timer)."""
        if window.starts_at <= now:
            self.items.act_in(session, item, actor=OPSLOOP, action="start", note="it starts now")
        else:
            session.add(Timer(kind=START, due_at=window.starts_at, work_item_id=item.id,
                              payload={"ref": item.ref}, created_at=now))

    def _pause_matching(self, session: Session, item: WorkItem, window: MaintenanceWindow) -> None:
        matchers = self.matchers(window)
        for other in session.exec(select(WorkItem).where(col(WorkItem.state).in_(_WATCHED))
                                  .order_by(col(WorkItem.id))):
            assert other.id is not None
            tenants = self.items.tenants(session, other.id)
            if any(match_all(matchers, labels) for labels in _labels(other, tenants)):
                self._pause(session, item.ref, window, other)

    def _pause(self, session: Session, ref: str, window: MaintenanceWindow, item: WorkItem) -> None:
        if not any(c.state == RUNNING for c in self.sla.clocks(session, item)):
            return
        self.items.record_in(session, item, actor=OPSLOOP, action="pause",
                             note=f"{ref} holds it (planned maintenance)")
        window.paused = [*window.paused, item.ref]
        session.add(window)

    def _finish(self, session: Session, item: WorkItem, window: MaintenanceWindow, now: datetime) -> None:
        window.ended_at = now
        session.add(window)
        opened = self.intake.release(session, item)
        resumed = []
        for ref in window.paused:
            other = self.items.lock(session, ref)
            if other.state in _WATCHED and any(c.state == PAUSED for c in self.sla.clocks(session, other)):
                self.items.record_in(session, other, actor=OPSLOOP, action="resume", note=f"{item.ref} ended")
                resumed.append(ref)
        audit.record(session, at=now, actor=OPSLOOP, action="maintenance.ended", subject=item.ref,
                     after={"opened": opened, "resumed": resumed, "early": now < window.ends_at})

    def _mirror(self, item: WorkItem, window: MaintenanceWindow, by: str) -> Outcome:
        """After the commit: the window as a silence in each Alertmanager with a `silence_url`."""
        outcome = Outcome(item, window)
        if not self.silences.apis or item.state not in (State.SCHEDULED.value, State.ACTIVE.value):
            return outcome
        mirrored = self.silences.create(ref=item.ref, what=item.title, matchers=self.matchers(window),
                                        starts=window.starts_at, ends=window.ends_at, by=by)
        outcome.mirrored, outcome.problems = sorted(mirrored.silences), mirrored.problems
        with self.db.transaction() as session:
            audit.lock_chain(session)
            row = self.window(session, item, lock=True)
            row.silences = {**row.silences, **mirrored.silences}
            session.add(row)
            audit.record(session, at=self.clock.now(), actor=OPSLOOP, action="maintenance.silenced",
                         subject=item.ref,
                         after={"silences": mirrored.silences, "problems": mirrored.problems})
            outcome.window = row
        return outcome

    def _audit(self, ref: str, action: str, after: dict[str, object]) -> None:
        with self.db.transaction() as session:
            audit.lock_chain(session)
            audit.record(session, at=self.clock.now(), actor=OPSLOOP, action=action, subject=ref, after=after)


def _labels(item: WorkItem, tenants: list[str]) -> list[dict[str, str]]:
    """What a window's matchers see of a work item: its labels, kind and severity, and each tenant."""
    base = {**item.labels, "kind": item.kind, "severity": item.severity}
    return [{**base, "tenant": t} for t in tenants] or [base]


__all__ = ["END", "START", "Maintenance", "Outcome"]
