"""One clock against one target: start, pause, resume, stop, breach (how it reads: `present.clocks`).

These functions work inside the caller's transaction and keep the clock's
warning and breach timers in step with it: a paused clock has none pending,
a resumed one gets them back at its moved due time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, insert
from sqlmodel import Session, col, select

from opsloop.policy import Policy
from opsloop.sla.calendars import WorkingTime, working_time
from opsloop.sla.models import BREACHED, MET, NO_RESPONSE, PAUSED, RUNNING, STOPPED, SlaClock
from opsloop.sla.policies import policy_at
from opsloop.timers.models import Timer

WARN, BREACH = "warn", "breach"


class ClockBook:
    """The clocks of work items, measured in their policies' calendars."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def calendar(self, clock: SlaClock) -> WorkingTime:
        return working_time(self.policy, clock.calendar)

    # ------------------------------------------------------------------ reading

    def current(self, session: Session, work_item_id: int, *, lock: bool = False) -> dict[str, SlaClock]:
        """The newest clock of each target (earlier ones are finished cycles)."""
        query = select(SlaClock).where(SlaClock.work_item_id == work_item_id).order_by(col(SlaClock.id))
        if lock:
            query = query.with_for_update()
        return {clock.target: clock for clock in session.exec(query)}

    def used(self, clock: SlaClock, now: datetime) -> timedelta:
        """Working time counted against the target so far."""
        used = timedelta(seconds=clock.used_seconds)
        if clock.running_since is not None:
            used += self.calendar(clock).elapsed(clock.running_since, now)
        return used

    def left(self, clock: SlaClock, now: datetime) -> timedelta:
        return timedelta(seconds=clock.target_seconds) - self.used(clock, now)

    # ------------------------------------------------------------------ changing

    def start(
        self, session: Session, *, work_item_id: int, target: str, seconds: int, policy_index: int,
        calendar: str, now: datetime, paused: bool = False, used: timedelta = timedelta(0),
        started_at: datetime | None = None, met: bool = False,
    ) -> SlaClock:
        """A clock against `seconds` of working time; `used` of it already spent (a clock carried over
        to another policy keeps its elapsed time, and is due at once if that is past the new target).
        `met`: what it measures happens as it starts (a person declared the item: response), so it is
        stored met and stopped at once - the row `start` then `stop` left, without the timers the one
        set and the other cancelled (three statements of every declare)."""
        clock = SlaClock(work_item_id=work_item_id, target=target, policy_index=policy_index,
                         calendar=calendar, target_seconds=seconds, started_at=started_at or now,
                         used_seconds=used.total_seconds())
        if met and (paused or used > timedelta(seconds=seconds)):  # not the plain case: start, then stop
            clock = self.start(session, work_item_id=work_item_id, target=target, seconds=seconds,
                               policy_index=policy_index, calendar=calendar, now=now, paused=paused,
                               used=used, started_at=started_at)
            self.stop(session, clock, now)
            return clock
        if met:
            clock.due_at = working_time(self.policy, calendar).add(now, timedelta(seconds=seconds) - used)
            clock.state, clock.settled_at, clock.stopped_at = MET, now, now
            session.add(clock)
            session.flush()
            return clock
        if paused:  # an update cycle that begins while the item's clocks are paused
            clock.state, clock.paused_at = PAUSED, now
        else:
            clock.running_since = now
            left = max(timedelta(seconds=seconds) - used, timedelta(0))
            clock.due_at = working_time(self.policy, calendar).add(now, left)
        session.add(clock)
        session.flush()
        if not paused:
            self._schedule(session, clock, now)
        return clock

    def pause(self, session: Session, clock: SlaClock, now: datetime) -> None:
        assert clock.state == RUNNING and clock.running_since is not None
        clock.used_seconds = self.used(clock, now).total_seconds()
        clock.running_since = clock.due_at = None
        clock.state, clock.paused_at = PAUSED, now
        session.add(clock)
        self.cancel_timers(session, clock)

    def resume(self, session: Session, clock: SlaClock, now: datetime) -> None:
        assert clock.state == PAUSED and clock.paused_at is not None
        clock.paused_seconds += (now - clock.paused_at).total_seconds()
        clock.state, clock.paused_at, clock.running_since = RUNNING, None, now
        clock.due_at = self.calendar(clock).add(now, self.left(clock, now))
        session.add(clock)
        session.flush()
        self._schedule(session, clock, now)

    def stop(self, session: Session, clock: SlaClock, now: datetime) -> str | None:
        """What the clock measures has happened. Returns `met` or `breached` if that settled it now."""
        if clock.stopped_at is not None:
            return None
        settled: str | None = None
        if clock.state == PAUSED and clock.paused_at is not None:
            clock.paused_seconds += (now - clock.paused_at).total_seconds()
            clock.paused_at = None
        used = self.used(clock, now)
        if clock.state in (RUNNING, PAUSED):
            # a breach the sweeper has not reached yet is still a breach
            settled = MET if used <= timedelta(seconds=clock.target_seconds) else BREACHED
            clock.state = settled
            clock.settled_at = now if settled == MET else clock.due_at
        clock.used_seconds, clock.running_since, clock.stopped_at = used.total_seconds(), None, now
        session.add(clock)
        self.cancel_timers(session, clock)
        return settled

    def unanswered(self, session: Session, clock: SlaClock, now: datetime) -> None:
        """What the clock waited for happened without a person (alerts resolved): `no_response`."""
        if clock.state == PAUSED and clock.paused_at is not None:
            clock.paused_seconds += (now - clock.paused_at).total_seconds()
            clock.paused_at = None
        clock.used_seconds = self.used(clock, now).total_seconds()
        clock.state, clock.settled_at = NO_RESPONSE, now
        clock.running_since, clock.stopped_at = None, now
        session.add(clock)
        self.cancel_timers(session, clock)

    def abandon(self, session: Session, clock: SlaClock, now: datetime) -> None:
        """Stop measuring without a verdict (an update cadence that no longer applies)."""
        clock.used_seconds = self.used(clock, now).total_seconds()
        clock.state, clock.running_since, clock.stopped_at = STOPPED, None, now
        session.add(clock)
        self.cancel_timers(session, clock)

    def breach(self, session: Session, clock: SlaClock) -> None:
        """The target passed. The clock keeps counting, so a late stop says by how much it was missed."""
        clock.state, clock.settled_at = BREACHED, clock.due_at
        session.add(clock)

    def cancel_timers(self, session: Session, clock: SlaClock) -> None:
        session.exec(delete(Timer).where(col(Timer.clock_id) == clock.id,  # type: ignore[call-overload]
                                         col(Timer.fired_at).is_(None)))

    def _schedule(self, session: Session, clock: SlaClock, now: datetime) -> None:
        assert clock.running_since is not None and clock.due_at is not None
        calendar = self.calendar(clock)
        used = timedelta(seconds=clock.used_seconds)
        entry = policy_at(self.policy, clock.policy_index)
        timers = []
        for fraction in sorted(entry.warn_at if entry else []):
            mark = timedelta(seconds=clock.target_seconds * fraction)
            if mark > used:  # a warning already passed before a pause is not given again
                timers.append(Timer(kind=WARN, due_at=calendar.add(clock.running_since, mark - used),
                                    work_item_id=clock.work_item_id, clock_id=clock.id,
                                    payload={"fraction": fraction}, created_at=now))
        timers.append(Timer(kind=BREACH, due_at=clock.due_at, work_item_id=clock.work_item_id,
                            clock_id=clock.id, created_at=now))
        # one multi-row insert (nobody here needs their ids), not an INSERT ... RETURNING each
        session.execute(insert(Timer), [timer.model_dump(exclude={"id"}) for timer in timers])
