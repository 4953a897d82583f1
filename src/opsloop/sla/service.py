"""SLA clocks on work items: started, stopped, paused and shown as the items change.

`Sla.on_event` is a WorkItems hook: it runs inside the transaction of every
change, so a clock never disagrees with its item. What stops which clock:

- response: acknowledge (or mitigate / resolve if nobody acknowledged; for
  exceptions, the decision). It also stops the escalation chain.
- resolution: resolve (exceptions: the decision).
- update: every other change by a person — a state change, an assignment or
  `/incident update` — meets the running update cycle and starts the next one,
  while the item is still being worked on (not yet resolved).

A reopened item gets fresh response, update and resolution clocks and, if its
policy says so, a new escalation. Pausing banks the clocks' used time and
removes their pending timers; resuming moves their due times by exactly the
working time spent paused.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from opsloop import audit, outbox
from opsloop.clock import Clock
from opsloop.durations import format_duration
from opsloop.errors import InvalidInput
from opsloop.messages import Button, Message, escape
from opsloop.models import WorkItem, WorkItemTenant
from opsloop.policy import Policy
from opsloop.sla.clocks import BREACH, LABELS, WARN, ClockBook, human
from opsloop.sla.escalation import PAGE, Escalations
from opsloop.sla.models import PAUSED, RUNNING, SlaClock, Timer
from opsloop.sla.policies import match_policy, policy_at, tier_of
from opsloop.sla.sweeper import TimerHandler
from opsloop.types import State
from opsloop.workitems import ItemEvent, WorkItems

SYSTEM = "opsloop"
RESPONSE_STOPS = frozenset({"acknowledge", "mitigate", "resolve", "close", "approve", "reject", "expire"})
RESOLUTION_STOPS = frozenset({"resolve", "close", "approve", "reject", "expire"})
UPDATE_STATES = frozenset({State.TRIGGERED.value, State.ACKNOWLEDGED.value, State.MITIGATED.value,
                           State.REQUESTED.value})
_NOT_UPDATES = frozenset({"created", "reopen", "pause", "resume"})


class Sla:
    def __init__(self, policy: Policy, clock: Clock, workitems: WorkItems, escalations: Escalations) -> None:
        self.policy = policy
        self.clock = clock
        self.workitems = workitems
        self.book = ClockBook(policy)
        self.escalations = escalations

    def install(self) -> None:
        """Hook into the work items: clocks follow every change and show on every card."""
        self.workitems.hooks.append(self.on_event)
        self.workitems.card_extras.append(self.card_fields)
        self.workitems.card_buttons.append(self.card_buttons)

    def handlers(self) -> dict[str, TimerHandler]:
        return {WARN: self._warn, BREACH: self._breach, PAGE: self._page}

    # ------------------------------------------------------------------ commands

    def pause(self, *, actor: str, ref: str, reason: str | None = None) -> WorkItem:
        text = f"<@{actor}> paused the clocks of {ref.upper()}" + (f": {escape(reason)}" if reason else "")
        return self.workitems.record(actor=actor, ref=ref, action="pause", text=text, note=reason)

    def resume(self, *, actor: str, ref: str) -> WorkItem:
        text = f"<@{actor}> resumed the clocks of {ref.upper()}"
        return self.workitems.record(actor=actor, ref=ref, action="resume", permission="pause", text=text)

    def update(self, *, actor: str, ref: str, text: str) -> WorkItem:
        """A status update: on the timeline and in the thread, and it meets the update target."""
        if not text.strip():
            raise InvalidInput("an update needs some text: what is the status?")
        line = f"📣 Update from <@{actor}> on {ref.upper()}: {escape(text.strip())}"
        return self.workitems.record(actor=actor, ref=ref, action="update", text=line, note=text.strip())

    # ------------------------------------------------------------------ the hook

    def on_event(self, session: Session, event: ItemEvent) -> None:
        item, now, action = event.item, event.at, event.action
        assert item.id is not None
        if action in ("created", "reopen"):
            self._start(session, item, now)
            return
        clocks = self.book.current(session, item.id, lock=True)
        if action == "pause":
            self._pause(session, item, clocks, event)
            return
        if action == "resume":
            self._resume(session, item, clocks, event)
            return
        settled: dict[str, str | None] = {}
        if action in RESPONSE_STOPS:
            if "response" in clocks:
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

    def _start(self, session: Session, item: WorkItem, now: datetime) -> None:
        assert item.id is not None
        match = match_policy(self.policy, item, tier_of(session, item.id))
        if match is None:
            return
        for clock in self.book.current(session, item.id, lock=True).values():  # a reopen ends the old cycle
            if clock.state in (RUNNING, PAUSED):
                self.book.abandon(session, clock, now)
        started = {}
        for target, duration in match.targets().items():
            clock = self.book.start(session, work_item_id=item.id, target=target,
                                    seconds=int(duration.total_seconds()), policy_index=match.index,
                                    calendar=match.policy.calendar, now=now)
            started[target] = clock.due_at
        chain = match.policy.escalation
        if chain and match.policy.escalate_on == "trigger" and item.state == State.TRIGGERED.value:
            self.escalations.start(session, item, chain, now)
        audit.record(session, at=now, actor=SYSTEM, action="sla.started", subject=item.ref,
                     after={"policy": match.index, "calendar": match.policy.calendar,
                            "due": started, "escalation": chain})

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

    def _pause(self, session: Session, item: WorkItem, clocks: dict[str, SlaClock], event: ItemEvent) -> None:
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
        self, session: Session, item: WorkItem, clocks: dict[str, SlaClock], event: ItemEvent
    ) -> None:
        paused = [clock for clock in clocks.values() if clock.state == PAUSED]
        if not paused:
            raise InvalidInput(f"{item.ref}: no paused clock to resume")
        for clock in paused:
            self.book.resume(session, clock, event.at)
        audit.record(session, at=event.at, actor=event.actor, action="sla.resumed", subject=item.ref,
                     after={c.target: c.due_at for c in paused})

    # ------------------------------------------------------------------ the card

    def card_fields(self, session: Session, item: WorkItem) -> list[tuple[str, str]]:
        if item.id is None:
            return []
        now = self.clock.now()
        return [(LABELS[target], self.book.describe(clock, now))
                for target, clock in self.book.current(session, item.id).items()]

    def card_buttons(self, session: Session, item: WorkItem) -> list[Button]:
        if item.id is None:
            return []
        states = {clock.state for clock in self.book.current(session, item.id).values()}
        if RUNNING in states:
            return [Button(label="Pause clock", action="clock.pause", value=item.ref)]
        if PAUSED in states:
            return [Button(label="Resume clock", action="clock.resume", value=item.ref)]
        return []

    # ------------------------------------------------------------------ timers

    def _clock_of(self, session: Session, timer: Timer) -> tuple[SlaClock | None, WorkItem | None]:
        clock = session.get(SlaClock, timer.clock_id, with_for_update=True) if timer.clock_id else None
        item = session.get(WorkItem, clock.work_item_id) if clock else None
        return clock, item

    def _warn(self, session: Session, timer: Timer, now: datetime) -> str:
        clock, item = self._clock_of(session, timer)
        if clock is None or item is None or clock.state != RUNNING:
            return "skipped: the clock is not running"
        assert clock.due_at is not None
        if clock.due_at <= now:  # came due late (e.g. after a restart): the breach says it all
            return "skipped: the target has passed"
        fraction = float(timer.payload.get("fraction", 0))
        left = human(self.book.left(clock, now))
        name = "an update" if clock.target == "update" else f"the {clock.target} target"
        line = (f"⏳ {item.ref}: {left} left for {name} "
                f"({format_duration(_seconds(clock.target_seconds))}; {round(fraction * 100)}% used)")
        audit.record(session, at=now, actor=SYSTEM, action="sla.warning", subject=item.ref,
                     after={"target": clock.target, "fraction": fraction, "due_at": clock.due_at})
        self._tell(session, item, line, now)
        return "fired"

    def _breach(self, session: Session, timer: Timer, now: datetime) -> str:
        clock, item = self._clock_of(session, timer)
        if clock is None or item is None or clock.state != RUNNING:
            return "skipped: the clock is not running"
        self.book.breach(session, clock)
        target = format_duration(_seconds(clock.target_seconds))
        line = (f"🚨 {item.ref}: no update for {target} (the update target)" if clock.target == "update"
                else f"🚨 {item.ref} missed its {clock.target} target ({target})")
        audit.record(session, at=now, actor=SYSTEM, action="sla.breached", subject=item.ref,
                     after={"target": clock.target, "due_at": clock.due_at})
        entry = policy_at(self.policy, clock.policy_index)
        if (clock.target == "response" and entry and entry.escalation and entry.escalate_on == "breach"
                and item.state == State.TRIGGERED.value):
            self.escalations.start(session, item, entry.escalation, now)
        self._tell(session, item, line, now)
        return "fired"

    def _page(self, session: Session, timer: Timer, now: datetime) -> str:
        item = session.get(WorkItem, timer.work_item_id) if timer.work_item_id else None
        if item is None:
            return "skipped: no such work item"
        outcome, line = self.escalations.fire(session, timer, item, now)
        if line:
            self._tell(session, item, line, now)
        return outcome

    def _tell(self, session: Session, item: WorkItem, line: str, now: datetime) -> None:
        """A line in the item's thread, also shown in the channel, and the card refreshed."""
        assert item.id is not None
        self.workitems.announce(session, item, _tenants(session, item.id), None, now)
        outbox.enqueue(session, transport="chat", target=item.channel or "", now=now,
                       thread_key=f"card:{item.ref}",
                       payload={"message": Message(text=line).to_json(), "broadcast": True})


def _seconds(value: int) -> timedelta:
    return timedelta(seconds=value)


def _tenants(session: Session, item_id: int) -> list[str]:
    return list(session.exec(select(WorkItemTenant.tenant_id)
                             .where(WorkItemTenant.work_item_id == item_id)
                             .order_by(col(WorkItemTenant.tenant_id))))
