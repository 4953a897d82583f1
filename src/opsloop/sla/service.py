"""SLA clocks on work items: started, stopped and paused as the items change.

`start_clocks` (on `ItemCreated`) and `follow` (on `ItemChanged`) run inside
the transaction of every change, so a clock never disagrees with its item.
What stops which clock:

- response: acknowledge (or mitigate / resolve if nobody acknowledged; for
  exceptions, the decision). It also stops the escalation chain.
- resolution: resolve (exceptions: the decision).
- update: every other change by a person — a state change, an assignment or
  `/incident update` — meets the running update cycle and starts the next one,
  while the item is still being worked on (not yet resolved).

A reopened item gets fresh response, update and resolution clocks and, if its
policy says so, a new escalation. Pausing banks the clocks' used time and
removes their pending timers; resuming moves their due times by exactly the
working time spent paused. The timers publish `ClockWarned` and
`ClockBreached`; the escalation chain `EscalationPaged`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from opsloop import audit
from opsloop.bus import Bus
from opsloop.clock import Clock
from opsloop.errors import InvalidInput
from opsloop.events import ClockBreached, ClockWarned, ItemChanged, ItemCreated
from opsloop.models import WorkItem
from opsloop.policy import Policy
from opsloop.sla.calendars import WorkingTime, working_time
from opsloop.sla.clocks import ClockBook
from opsloop.sla.escalation import Escalations
from opsloop.sla.models import BREACHED, NO_RESPONSE, PAUSED, RUNNING, SlaClock
from opsloop.sla.policies import match_policy, policy_at, tier_of
from opsloop.timers.models import Timer
from opsloop.types import OPSLOOP, Kind, State, is_system
from opsloop.workitems import WorkItems

RESPONSE_STOPS = frozenset({"acknowledge", "mitigate", "resolve", "close", "approve", "reject", "expire"})
RESOLUTION_STOPS = frozenset({"resolve", "close", "approve", "reject", "expire"})
UPDATE_STATES = frozenset({State.TRIGGERED.value, State.ACKNOWLEDGED.value, State.MITIGATED.value,
                           State.REQUESTED.value})
_NOT_UPDATES = frozenset({"created", "reopen", "pause", "resume"})


class Sla:
    def __init__(self, policy: Policy, clock: Clock, workitems: WorkItems, escalations: Escalations,
                 bus: Bus) -> None:
        self.policy = policy
        self.clock = clock
        self.workitems = workitems
        self.book = ClockBook(policy)
        self.escalations = escalations
        self.bus = bus

    # ------------------------------------------------------------------ commands

    def pause(self, *, actor: str, ref: str, reason: str | None = None) -> WorkItem:
        return self.workitems.record(actor=actor, ref=ref, action="pause", note=reason)

    def resume(self, *, actor: str, ref: str) -> WorkItem:
        return self.workitems.record(actor=actor, ref=ref, action="resume", permission="pause")

    def update(self, *, actor: str, ref: str, text: str) -> WorkItem:
        """A status update: on the timeline and in the thread, and it meets the update target."""
        if not text.strip():
            raise InvalidInput("an update needs some text: what is the status?")
        return self.workitems.record(actor=actor, ref=ref, action="update", note=text.strip())

    # ------------------------------------------------------------------ handlers

    def start_clocks(self, session: Session, event: ItemCreated) -> None:
        """A new item held to an SLA policy gets its clocks (and, maybe, its escalation chain). A person
        who declares an incident is responding (`sla.declared_meets_response`): its response target is
        met at once, and no chain pages anyone to respond."""
        self._start(session, event.item, event.at, declared=self._declared(event.item), new=True)

    def _declared(self, item: WorkItem) -> bool:
        """Declared by a person, who is taken as responding (`sla.declared_meets_response`)."""
        return (item.kind == Kind.INCIDENT.value and not is_system(item.created_by)
                and self.policy.sla.declared_meets_response)

    def follow(self, session: Session, event: ItemChanged) -> None:
        """Clocks follow every change: stopped, paused, resumed, a new update cycle, or started anew."""
        item, now, action = event.item, event.at, event.action
        assert item.id is not None
        if action == "reopen":
            self._start(session, item, now)
            return
        clocks = self.book.current(session, item.id, lock=True)
        if action == "severity":
            self._reevaluate(session, item, clocks, event)
            return
        if action == "pause":
            self._pause(session, item, clocks, event)
            return
        if action == "resume":
            self._resume(session, item, clocks, event)
            return
        settled: dict[str, str | None] = {}
        machine = is_system(event.actor)
        response = clocks.get("response")
        if (machine and action in ("mitigate", "resolve") and response is not None
                and response.state in (RUNNING, PAUSED)):
            self.book.unanswered(session, response, now)  # nobody responded: never "met"
            settled["response"] = NO_RESPONSE
        elif (response is not None and not machine and response.stopped_at is None
              and action not in RESPONSE_STOPS and action not in _NOT_UPDATES
              and item.state == State.ACKNOWLEDGED.value):
            settled["response"] = self.book.stop(session, response, now)  # a person, after a machine's ack
        if action in RESPONSE_STOPS and not (machine and action == "acknowledge"
                                              and not self.policy.sla.machine_ack_meets_response):
            if "response" in clocks and "response" not in settled:
                settled["response"] = self.book.stop(session, clocks["response"], now)
            if self.escalations.stop(session, item):
                audit.record(session, at=now, actor=event.actor, action="escalation.stopped",
                             subject=item.ref, after={"by": action})
        if action in RESOLUTION_STOPS and "resolution" in clocks:
            settled["resolution"] = self.book.stop(session, clocks["resolution"], now)
        if action not in _NOT_UPDATES and "update" in clocks:
            self._next_update_cycle(session, item, clocks, now)
        outcome = {target: verdict for target, verdict in settled.items() if verdict}
        if outcome:
            audit.record(session, at=now, actor=event.actor, action="sla.settled", subject=item.ref,
                         after=outcome)

    def _start(self, session: Session, item: WorkItem, now: datetime, *, declared: bool = False,
               new: bool = False) -> None:
        """Start the item's clocks. `new`: it was just created, so it has no clocks to end (not read)."""
        assert item.id is not None
        match = match_policy(self.policy, item, tier_of(session, item.id))
        if match is None:
            return
        old = {} if new else self.book.current(session, item.id, lock=True)
        for clock in old.values():  # a reopen ends the old cycle
            if clock.state in (RUNNING, PAUSED):
                self.book.abandon(session, clock, now)
        started = {}
        for target, duration in match.targets().items():
            met_now = target == "response" and declared
            clock = self.book.start(session, work_item_id=item.id, target=target,
                                    seconds=int(duration.total_seconds()), policy_index=match.index,
                                    calendar=match.policy.calendar, now=now, met=met_now)
            started[target] = None if met_now else clock.due_at
        chain = match.policy.escalation if not (declared and "response" in started) else None
        if chain and match.policy.escalate_on == "trigger" and item.state == State.TRIGGERED.value:
            self.escalations.start(session, item, chain, now)
        met = {"response": "met: declared by a person"} if declared and "response" in started else {}
        audit.record(session, at=now, actor=OPSLOOP, action="sla.started", subject=item.ref,
                     after={"policy": match.index, "calendar": match.policy.calendar,
                            "due": started, "escalation": chain} | met)

    def _reevaluate(
        self, session: Session, item: WorkItem, clocks: dict[str, SlaClock], event: ItemChanged
    ) -> None:
        """A new severity: the SLA policy that now matches, its targets and its escalation chain. A clock
        still counting carries the time it used over to the new target (due at once if that is past);
        a settled one stays settled; a target the new policy lacks stops counting."""
        assert item.id is not None
        now = event.at
        match = match_policy(self.policy, item, tier_of(session, item.id))
        targets = match.targets() if match is not None else {}
        moved: dict[str, object] = {}
        for target, clock in clocks.items():
            if clock.state not in (RUNNING, PAUSED):
                continue
            used = self.book.used(clock, now)
            self.book.abandon(session, clock, now)
            if match is not None and target in targets:
                new = self.book.start(session, work_item_id=item.id, target=target,
                                      seconds=int(targets[target].total_seconds()), policy_index=match.index,
                                      calendar=match.policy.calendar, now=now, paused=clock.state == PAUSED,
                                      used=used, started_at=clock.started_at)
                moved[target] = new.due_at
            else:
                moved[target] = None
        if match is not None and not clocks and item.state in UPDATE_STATES:
            for target, duration in targets.items():  # held to no policy before: clocks from the start
                if target == "response" and item.acknowledged_at is not None:
                    continue
                calendar = self.book_calendar(match.policy.calendar)
                met = target == "response" and self._declared(item)  # it was met at declaration
                used = timedelta(0) if target == "update" or met else calendar.elapsed(item.created_at, now)
                new = self.book.start(session, work_item_id=item.id, target=target,
                                      seconds=int(duration.total_seconds()), policy_index=match.index,
                                      calendar=match.policy.calendar, now=now, used=used)
                moved[target] = new.due_at
                if met:
                    self.book.stop(session, new, now)
                    new.settled_at = item.created_at
                    moved[target] = None
        chain = (match.policy.escalation if match is not None and match.policy.escalate_on == "trigger"
                 else None)
        running = self.escalations.running(session, item.id)
        now_chain = str(running.payload.get("chain")) if running is not None else None
        answered = not self._unanswered(self.book.current(session, item.id))
        if item.state == State.TRIGGERED.value and chain and chain != now_chain and not answered:
            self.escalations.start(session, item, chain, now)
        elif running is not None and (chain is None or answered):
            self.escalations.stop(session, item)
        audit.record(session, at=now, actor=event.actor, action="sla.reevaluated", subject=item.ref,
                     after={"policy": match.index if match is not None else None, "due": moved,
                            "escalation": chain})

    def _unanswered(self, clocks: dict[str, SlaClock]) -> bool:
        """Nobody has met the response target yet (a chain pages only until someone responds)."""
        response = clocks.get("response")
        return response is None or response.state in (RUNNING, PAUSED, BREACHED)

    def book_calendar(self, name: str) -> WorkingTime:
        return working_time(self.policy, name)

    def _next_update_cycle(
        self, session: Session, item: WorkItem, clocks: dict[str, SlaClock], now: datetime
    ) -> None:
        clock = clocks["update"]
        self.book.stop(session, clock, now)
        if item.state in UPDATE_STATES:
            paused = any(c.state == PAUSED for c in clocks.values())
            self.book.start(session, work_item_id=clock.work_item_id, target="update",
                            seconds=clock.target_seconds, policy_index=clock.policy_index,
                            calendar=clock.calendar, now=now, paused=paused)

    def _pause(
        self, session: Session, item: WorkItem, clocks: dict[str, SlaClock], event: ItemChanged
    ) -> None:
        running = [clock for clock in clocks.values() if clock.state == RUNNING]
        if not running:
            paused = any(clock.state == PAUSED for clock in clocks.values())
            raise InvalidInput(f"{item.ref}: its clocks are already paused" if paused
                               else f"{item.ref} has no running clock to pause")
        for clock in running:
            self.book.pause(session, clock, event.at)
        audit.record(session, at=event.at, actor=event.actor, action="sla.paused", subject=item.ref,
                     after={"targets": [c.target for c in running], "reason": event.note})

    def _resume(
        self, session: Session, item: WorkItem, clocks: dict[str, SlaClock], event: ItemChanged
    ) -> None:
        paused = [clock for clock in clocks.values() if clock.state == PAUSED]
        if not paused:
            raise InvalidInput(f"{item.ref}: no paused clock to resume")
        for clock in paused:
            self.book.resume(session, clock, event.at)
        audit.record(session, at=event.at, actor=event.actor, action="sla.resumed", subject=item.ref,
                     after={c.target: c.due_at for c in paused})

    # ------------------------------------------------------------------ reading

    def clocks(self, session: Session, item: WorkItem) -> list[SlaClock]:
        """The item's current clock of each target, in the order they are shown."""
        return list(self.book.current(session, item.id).values()) if item.id is not None else []

    # ------------------------------------------------------------------ timers

    def _clock_of(self, session: Session, timer: Timer) -> tuple[SlaClock | None, WorkItem | None]:
        clock = session.get(SlaClock, timer.clock_id, with_for_update=True) if timer.clock_id else None
        item = session.get(WorkItem, clock.work_item_id) if clock else None
        return clock, item

    def on_warn(self, session: Session, timer: Timer, now: datetime) -> str:
        """The `warn` timer: a `warn_at` mark of a running clock (`ClockWarned`)."""
        clock, item = self._clock_of(session, timer)
        if clock is None or item is None or clock.state != RUNNING:
            return "skipped: the clock is not running"
        assert clock.due_at is not None and clock.id is not None
        if clock.due_at <= now:  # came due late (e.g. after a restart): the breach says it all
            return "skipped: the target has passed"
        fraction = float(timer.payload.get("fraction", 0))
        audit.record(session, at=now, actor=OPSLOOP, action="sla.warning", subject=item.ref,
                     after={"target": clock.target, "fraction": fraction, "due_at": clock.due_at})
        self.bus.publish(session, ClockWarned(at=now, item=item, clock_id=clock.id, target=clock.target,
                                              target_seconds=clock.target_seconds, fraction=fraction,
                                              left=self.book.left(clock, now)))
        return "fired"

    def on_breach(self, session: Session, timer: Timer, now: datetime) -> str:
        """The `breach` timer: the target passed while the clock ran (`ClockBreached`)."""
        clock, item = self._clock_of(session, timer)
        if clock is None or item is None or clock.state != RUNNING:
            return "skipped: the clock is not running"
        assert clock.id is not None
        self.book.breach(session, clock)
        audit.record(session, at=now, actor=OPSLOOP, action="sla.breached", subject=item.ref,
                     after={"target": clock.target, "due_at": clock.due_at})
        entry = policy_at(self.policy, clock.policy_index)
        if (clock.target == "response" and entry and entry.escalation and entry.escalate_on == "breach"
                and item.state == State.TRIGGERED.value):
            self.escalations.start(session, item, entry.escalation, now)
        self.bus.publish(session, ClockBreached(at=now, item=item, clock_id=clock.id, target=clock.target,
                                                target_seconds=clock.target_seconds, due_at=clock.due_at))
        return "fired"

    def on_page(self, session: Session, timer: Timer, now: datetime) -> str:
        """The `page` timer: page the next level of an escalation chain."""
        item = session.get(WorkItem, timer.work_item_id) if timer.work_item_id else None
        if item is None:
            return "skipped: no such work item"
        return self.escalations.fire(session, timer, item, now)
