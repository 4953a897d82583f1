"""Scheduled runbooks: each tick of a `schedules` entry opens a task (TSK-n) with its runbook attached.

Each schedule is one row (`schedule_states`) and one pending durable timer (`schedule.tick`), which
fires once however many replicas sweep (the sweeper's claim). Its handler opens the task (routing
attaches the runbook the schedule names, with its inputs) and schedules the next tick, in the same
transaction. Arming at start is idempotent and serialised on the audit chain's head, so replicas
starting together leave one timer.

A tick that came due while no replica ran is still pending at the next start, and the first sweep
fires it once, late: `catch_up: latest` runs it then (however many ticks were missed, once),
`catch_up: skip` records it as skipped. Either way the next tick is the schedule's next time after
now. A task whose run completes is resolved by opsloop; one whose run stops waits for a person.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.events import RunFinished
from opsloop.lifecycle import OPEN_STATES
from opsloop.policy import Policy
from opsloop.schedules.models import ScheduleState
from opsloop.timers.models import Timer
from opsloop.types import OPSLOOP, Kind
from opsloop.workitems import WorkItems

TICK = "schedule.tick"
LATE = timedelta(minutes=1)  # a tick fired later than this was missed (nobody was running), not just swept
_OPEN = {s.value for s in OPEN_STATES[Kind.TASK]}


@dataclass(eq=False)
class Schedules:
    db: Database
    policy: Policy
    clock: Clock
    items: WorkItems

    # ------------------------------------------------------------------ arming

    def arm(self) -> None:
        """At start: every schedule has its row and its pending tick (idempotent across replicas)."""
        if not self.policy.schedules:
            return
        now = self.clock.now()
        with self.db.transaction() as session:
            audit.lock_chain(session)
            for name, schedule in self.policy.schedules.items():
                row = session.get(ScheduleState, name)
                if row is None:
                    row = ScheduleState(name=name, fingerprint=schedule.fingerprint())
                elif row.fingerprint == schedule.fingerprint() and row.timer_id is not None:
                    continue  # its tick is pending (overdue ones fire once, at the next sweep)
                row.fingerprint = schedule.fingerprint()
                self._schedule(session, row, schedule.next_tick(now, self.policy.timezone), now)
                _record(session, now, "schedule.armed", name, {
                    "next_at": row.next_at,
                    "cron": schedule.cron,
                    "timezone": schedule.timezone or self.policy.timezone,
                })

    def _schedule(self, session: Session, row: ScheduleState, due: datetime, now: datetime) -> None:
        timer = Timer(kind=TICK, due_at=due, payload={"schedule": row.name}, created_at=now)
        session.add(timer)
        session.flush()
        row.timer_id, row.next_at = timer.id, due
        session.add(row)

    # ------------------------------------------------------------------ ticking

    def on_tick(self, session: Session, timer: Timer, now: datetime) -> str:
        """The `schedule.tick` timer: open the task (its runbook attached) and schedule the next tick."""
        name = str(timer.payload.get("schedule", ""))
        schedule = self.policy.schedules.get(name)
        row = session.get(ScheduleState, name, with_for_update=True)
        if schedule is None or row is None:
            return "skipped: no longer in the policy"
        if row.timer_id != timer.id:
            return "skipped: the schedule was armed again"
        late = now - timer.due_at
        self._schedule(session, row, schedule.next_tick(now, self.policy.timezone), now)
        if late > LATE and schedule.catch_up == "skip":
            row.skipped += 1
            _record(session, now, "schedule.skipped", name, {
                "tick": timer.due_at,
                "why": "missed while opsloop was not running (catch_up: skip)",
                "next_at": row.next_at,
            })
            return "skipped: missed while opsloop was not running (catch_up: skip)"
        zone = ZoneInfo(schedule.timezone or self.policy.timezone)
        when = timer.due_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        title = f"{schedule.title or name} ({when})"
        labels = {
            "runbook": schedule.runbook,
            "schedule": name,
            **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in schedule.inputs.items()},
        }
        item = self.items.create_in(
            session, Kind.TASK, actor=OPSLOOP, title=title, severity=schedule.severity, labels=labels
        )
        row.last_tick_at, row.last_item_id, row.ticks = timer.due_at, item.id, row.ticks + 1
        _record(session, now, "schedule.ticked", name, {
            "task": item.ref,
            "tick": timer.due_at,
            "late_seconds": int(late.total_seconds()),
            "next_at": row.next_at,
        })
        return f"fired: {item.ref}" + (" (catch-up)" if late > LATE else "")

    def on_run_finished(self, session: Session, event: RunFinished) -> None:
        """A task whose runbook completed is resolved (a stopped one waits for a person)."""
        item = event.item
        if item.kind == Kind.TASK.value and event.state == "completed" and item.state in _OPEN:
            self.items.act_in(
                session, item, actor=OPSLOOP, action="resolve", note=f"runbook {event.runbook_id} completed"
            )

    def states(self) -> list[ScheduleState]:
        with self.db.transaction() as session:
            return list(session.exec(select(ScheduleState).order_by(col(ScheduleState.name))))


def _record(session: Session, now: datetime, action: str, name: str, after: dict[str, Any]) -> None:
    """An entry of a schedule's audit trail (armed, skipped, ticked): always opsloop's doing."""
    audit.record(session, at=now, actor=OPSLOOP, action=action, subject=f"schedule:{name}", after=after)
