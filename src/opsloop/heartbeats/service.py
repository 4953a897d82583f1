"""Heartbeats: check-ins move a deadline; a missed deadline opens one incident; the next check-in
resolves it.

Each heartbeat is one row (`heartbeats`) and at most one pending durable timer
(`heartbeat.due`). A check-in moves that timer's due time in place, so a job
checking in every minute leaves no trail of timers behind. The timer fires
once however many replicas sweep (the sweeper's claim); its handler locks
the row and acts only if the deadline it stands for is still the row's, so a
check-in racing the deadline wins or loses cleanly: one incident at most per
silence. Check-ins take the audit chain's head first, the lock order every
writer keeps (the sweeper takes it before its timers), so they never deadlock
with a sweep.

A heartbeat is armed at start: with no check-in within `every` + `grace` of
start (or the first `cron` time after start plus `grace`) it is missed. A
deadline that passed while no replica ran is armed again from the start
rather than paged: nobody could have checked in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.errors import NotFound
from opsloop.heartbeats.config import Heartbeat
from opsloop.heartbeats.models import DOWN, UP, WAITING, HeartbeatState
from opsloop.intake.service import open_routed
from opsloop.models import WorkItem
from opsloop.policy import Policy
from opsloop.timers.models import Timer
from opsloop.types import OPSLOOP, State
from opsloop.workitems import WorkItems

DUE = "heartbeat.due"
MISSED_ALERTNAME = "HeartbeatMissed"
# a deadline that passed longer ago than this at start was not swept: nobody was running
UNSWEPT = timedelta(minutes=1)
_OPEN = (State.TRIGGERED.value, State.ACKNOWLEDGED.value, State.MITIGATED.value)

# a matching maintenance window that is active at `now`: (its ref, when it ends), or None
PausedBy = Callable[[Session, dict[str, str], datetime], tuple[str, datetime] | None]


@dataclass(frozen=True)
class CheckIn:
    name: str
    next_due: datetime
    resolved: str | None = None  # the incident of the miss this check-in ended


class Heartbeats:
    def __init__(self, db: Database, policy: Policy, clock: Clock, workitems: WorkItems,
                 paused_by: PausedBy | None = None) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.items = workitems
        self.config: dict[str, Heartbeat] = dict(policy.heartbeats)
        self.by_alertname = {hb.alertname: name for name, hb in self.config.items() if hb.alertname}
        self.paused_by = paused_by

    # ------------------------------------------------------------------ arming

    def arm(self) -> None:
        """At start: every heartbeat of the policy has its row and its pending timer (idempotent, and
        safe with several replicas starting at once)."""
        if not self.config:
            return
        now = self.clock.now()
        with self.db.transaction() as session:
            audit.lock_chain(session)  # serialises replicas: one check-then-insert at a time
            for name, heartbeat in self.config.items():
                self._arm(session, name, heartbeat, now)

    def _arm(self, session: Session, name: str, heartbeat: Heartbeat, now: datetime) -> None:
        row = session.get(HeartbeatState, name)
        if row is None:
            row = HeartbeatState(name=name, fingerprint=heartbeat.fingerprint(), armed_at=now)
            self._schedule(session, row, heartbeat.deadline(now, self.policy.timezone), now)
            audit.record(session, at=now, actor=OPSLOOP, action="heartbeat.armed",
                         subject=f"heartbeat:{name}", after={"due_at": row.due_at})
            return
        if row.state == DOWN:
            return  # missed, and its incident open: the next check-in ends it
        changed = row.fingerprint != heartbeat.fingerprint()
        unswept = row.due_at is not None and row.due_at < now - UNSWEPT
        if changed or unswept or row.due_at is None:
            row.fingerprint, row.armed_at = heartbeat.fingerprint(), now
            base = row.last_checkin_at if changed and row.last_checkin_at and not unswept else now
            self._schedule(session, row, heartbeat.deadline(base, self.policy.timezone), now)
            why = "schedule changed" if changed else "its deadline passed while opsloop was not running"
            audit.record(session, at=now, actor=OPSLOOP, action="heartbeat.armed",
                         subject=f"heartbeat:{name}", after={"due_at": row.due_at, "why": why})

    def _schedule(self, session: Session, row: HeartbeatState, due: datetime, now: datetime) -> None:
        """Move the row's pending timer to `due` in place, or add one if it has none (or it fired)."""
        row.due_at = due
        moved = 0
        if row.timer_id is not None:
            moved = session.exec(update(Timer).where(  # type: ignore[call-overload]
                col(Timer.id) == row.timer_id, col(Timer.fired_at).is_(None)).values(due_at=due)).rowcount
        if not moved:
            timer = Timer(kind=DUE, due_at=due, payload={"heartbeat": row.name}, created_at=now)
            session.add(timer)
            session.flush()
            row.timer_id = timer.id
        session.add(row)

    # ------------------------------------------------------------------ checking in

    def check_in(self, name: str, *, actor: str) -> CheckIn:
        """`POST /hooks/heartbeat/NAME`: heard from; a missed heartbeat's incident is resolved."""
        if name not in self.config:
            raise NotFound(f"no heartbeat {name!r} (heartbeats: {', '.join(sorted(self.config)) or 'none'})")
        with self.db.transaction() as session:
            audit.lock_chain(session)
            return self.check_in_in(session, name, actor=actor, now=self.clock.now())

    def check_in_in(self, session: Session, name: str, *, actor: str, now: datetime) -> CheckIn:
        """A check-in in the caller's transaction (which holds the audit chain's head)."""
        heartbeat = self.config[name]
        row = session.get(HeartbeatState, name, with_for_update=True)
        if row is None:  # checked in before this replica armed it: this is its start
            row = HeartbeatState(name=name, fingerprint=heartbeat.fingerprint(), armed_at=now)
        resolved = self._recovered(session, row, actor, now) if row.state == DOWN else None
        row.state, row.last_checkin_at, row.checkins = UP, now, row.checkins + 1
        self._schedule(session, row, heartbeat.deadline(now, self.policy.timezone), now)
        assert row.due_at is not None
        return CheckIn(name=name, next_due=row.due_at, resolved=resolved)

    def _recovered(self, session: Session, row: HeartbeatState, actor: str, now: datetime) -> str | None:
        audit.record(session, at=now, actor=actor, action="heartbeat.recovered",
                     subject=f"heartbeat:{row.name}", before={"state": DOWN, "missed_at": row.missed_at},
                     after={"state": UP})
        item = session.get(WorkItem, row.work_item_id, with_for_update=True) if row.work_item_id else None
        row.work_item_id = row.missed_at = None
        if item is None or item.state not in _OPEN:
            return None
        self.items.act_in(session, item, actor=actor, action="resolve",
                          note="the heartbeat checked in again")
        return item.ref

    def alert_check_in(self, session: Session, alertname: str, *, actor: str, now: datetime) -> bool:
        """An Alertmanager alert named as a heartbeat (`heartbeats.NAME.alertname`, e.g. Watchdog)
        checks it in; True when it did (the alert is then no incident)."""
        name = self.by_alertname.get(alertname)
        if name is None:
            return False
        self.check_in_in(session, name, actor=actor, now=now)
        return True

    # ------------------------------------------------------------------ missing

    def on_due(self, session: Session, timer: Timer, now: datetime) -> str:
        """The `heartbeat.due` timer: no check-in by the deadline opens an incident through routing."""
        name = str(timer.payload.get("heartbeat", ""))
        heartbeat = self.config.get(name)
        row = session.get(HeartbeatState, name, with_for_update=True)
        if heartbeat is None or row is None:
            return "skipped: no longer in the policy"
        if row.timer_id != timer.id or row.state == DOWN or row.due_at is None or row.due_at > now:
            return "skipped: it checked in"
        labels = {"alertname": MISSED_ALERTNAME, "heartbeat": name, **heartbeat.labels}
        window = self.paused_by(session, labels, now) if self.paused_by else None
        if window is not None:
            ref, ends = window
            row.timer_id = None  # this timer is firing now: the deadline after the window needs a new one
            self._schedule(session, row, heartbeat.deadline(max(ends, now), self.policy.timezone), now)
            audit.record(session, at=now, actor=OPSLOOP, action="heartbeat.paused",
                         subject=f"heartbeat:{name}", after={"by": ref, "due_at": row.due_at})
            return f"skipped: paused by {ref}"
        since = row.last_checkin_at
        heard = (f"since {since:%Y-%m-%d %H:%M} UTC" if since
                 else f"since it was armed at {row.armed_at:%Y-%m-%d %H:%M} UTC")
        item = open_routed(session, self.policy, self.items, actor=OPSLOOP,
                           title=f"Heartbeat {name} missed: no check-in {heard}", labels=labels)
        row.state, row.missed_at, row.work_item_id = DOWN, now, item.id
        row.due_at = row.timer_id = None
        session.add(row)
        audit.record(session, at=now, actor=OPSLOOP, action="heartbeat.missed",
                     subject=f"heartbeat:{name}",
                     after={"incident": item.ref, "last_checkin_at": since, "deadline": timer.due_at})
        return f"fired: {item.ref}"

    # ------------------------------------------------------------------ reading

    def states(self) -> list[HeartbeatState]:
        with self.db.transaction() as session:
            return list(session.exec(select(HeartbeatState).order_by(col(HeartbeatState.name))))


__all__ = ["DOWN", "DUE", "UP", "WAITING", "CheckIn", "Heartbeats"]
