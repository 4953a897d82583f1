"""What a rollout looks like now, as data: waves, per-tenant counts, failures, time to deadline; and each
tenant's outcome (for `/runbook status` and `opsloop runbooks rollout RUN --csv`). The counting queries
the wave engine decides by (errors against the budget, tenants in a state) are here too."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlmodel import Session, col, func, select

from opsloop.errors import NotFound
from opsloop.models import WorkItem
from opsloop.rollouts import models as M
from opsloop.rollouts.config import Fleet
from opsloop.rollouts.models import Rollout, RolloutTarget, key_of
from opsloop.runbooks.models import RunbookRun
from opsloop.runbooks.pinning import runbook_of, snapshot_of
from opsloop.runbooks.schema import HttpStep
from opsloop.sla.clocks import ClockBook
from opsloop.sla.models import SlaClock

MAX_FAILURES = 10
CSV_COLUMNS = (
    "tenant",
    "wave",
    "wave_name",
    "position",
    "state",
    "status",
    "attempts",
    "error",
    "rollback_status",
    "rollback_error",
    "idempotency_key",
    "started_at",
    "finished_at",
)


class WaveView(NamedTuple):
    """A wave as the report shows it: its name, how many targets, how many in each state, and whether
    it is the current one."""

    name: str
    size: int
    counts: dict[str, int]
    current: bool


class Failure(NamedTuple):
    """A target that failed (or waits), and why."""

    tenant: str
    state: str
    why: str


@dataclass(frozen=True)
class RolloutReport:
    rollout_id: int
    run_id: int
    step_id: str
    state: str
    targets: int
    wave: int
    waves: list[WaveView]
    counts: dict[str, int]
    errors: int  # counted against the budget now (set-aside ones excluded)
    allowed_errors: int
    failures: list[Failure]
    deadline_left: timedelta | None
    deadline_at: datetime | None
    next_wave_at: datetime | None
    halted_reason: str | None
    approvals: int
    approvals_needed: int
    approvers: list[str]
    rollback: bool  # the step has a rollback request
    window_waits: int = 0  # pending tenants set aside until their maintenance window opens
    windows: tuple[Failure, ...] = ()  # the first MAX_FAILURES of them, each with its reason


def errors_of(session: Session, rollout_id: int) -> int:
    """Tenants that count against the error budget: failed, or unknown after the far side's silence
    (not those whose own worker died mid-call)."""
    return int(session.exec(select(func.count()).select_from(RolloutTarget).where(
        RolloutTarget.rollout_id == rollout_id, col(RolloutTarget.state).in_(M.ERRORS),
        col(RolloutTarget.orphaned).is_(False))).one())


def counts(session: Session, rollout: Rollout) -> dict[str, int]:
    """How many of the rollout's tenants are in each state."""
    return {
        state: int(n)
        for state, n in session.exec(
            select(RolloutTarget.state, func.count())
            .where(RolloutTarget.rollout_id == rollout.id)
            .group_by(col(RolloutTarget.state))
        )
    }


def count_in(session: Session, rollout: Rollout, states: tuple[str, ...]) -> int:
    """How many of the rollout's tenants are in one of `states`."""
    return int(
        session.exec(
            select(func.count())
            .select_from(RolloutTarget)
            .where(RolloutTarget.rollout_id == rollout.id, col(RolloutTarget.state).in_(states))
        ).one()
    )


def any_in_wave(session: Session, rollout: Rollout, wave: int, states: tuple[str, ...]) -> bool:
    """Whether some tenant of `wave` is in one of `states` (one id read, not a whole row)."""
    return (
        session.exec(
            select(RolloutTarget.id)
            .where(
                RolloutTarget.rollout_id == rollout.id,
                RolloutTarget.wave == wave,
                col(RolloutTarget.state).in_(states),
            )
            .limit(1)
        ).first()
        is not None
    )



def wave_tenants(session: Session, rollout: Rollout, state: str) -> list[str]:
    """The tenants of the rollout's current wave in `state`, in rollout order."""
    return list(
        session.exec(
            select(RolloutTarget.tenant_id)
            .where(
                RolloutTarget.rollout_id == rollout.id,
                RolloutTarget.wave == rollout.wave,
                RolloutTarget.state == state,
            )
            .order_by(col(RolloutTarget.position))
        )
    )

def of_step(session: Session, run: RunbookRun, step_id: str) -> Rollout | None:
    """The rollout of a run's step, if it has one yet."""
    return session.exec(select(Rollout).where(Rollout.run_id == run.id, Rollout.step_id == step_id)).first()


def due(session: Session, now: datetime) -> list[int]:
    """Rollouts whose pause between waves is over."""
    return [
        r
        for r in session.exec(
            select(Rollout.id).where(Rollout.state == M.PAUSING, col(Rollout.next_wave_at) <= now)
        )
        if r is not None
    ]

def report(
    session: Session, rollout: Rollout, fleet: Fleet, book: ClockBook, now: datetime, *, rollback: bool
) -> RolloutReport:
    assert rollout.id is not None
    by_wave: dict[int, Counter[str]] = {}
    for wave, state, n in session.exec(
        select(RolloutTarget.wave, RolloutTarget.state, func.count())
        .where(RolloutTarget.rollout_id == rollout.id)
        .group_by(col(RolloutTarget.wave), col(RolloutTarget.state))
    ):
        by_wave.setdefault(wave, Counter())[state] += int(n)
    totals: Counter[str] = Counter()
    for counts in by_wave.values():
        totals.update(counts)
    waves = [
        WaveView(fleet.wave_name(i), size, dict(by_wave.get(i, {})), i == rollout.wave)
        for i, size in enumerate(rollout.waves)
    ]
    failed = session.exec(
        select(RolloutTarget)
        .where(
            RolloutTarget.rollout_id == rollout.id,
            col(RolloutTarget.state).in_((M.FAILED, M.UNKNOWN, M.RB_FAILED, M.RB_UNKNOWN)),
        )
        .order_by(col(RolloutTarget.position))
        .limit(MAX_FAILURES)
    ).all()
    failures = [
        Failure(
            t.tenant_id,
            t.state,
            (t.rollback_error if t.state.startswith("rollback") else t.error) or f"status {t.status}",
        )
        for t in failed
    ]
    left = deadline_at = None
    if rollout.clock_id is not None:
        clock = session.get(SlaClock, rollout.clock_id)
        if clock is not None and clock.stopped_at is None:
            left, deadline_at = book.left(clock, now), clock.due_at
    waits = col(RolloutTarget.not_before) > now
    window_waits = int(session.exec(select(func.count()).select_from(RolloutTarget).where(
        RolloutTarget.rollout_id == rollout.id, RolloutTarget.state == M.PENDING, waits)).one())
    windows = tuple(
        Failure(t.tenant_id, t.state, t.waits_for or "waits for its maintenance window")
        for t in session.exec(
            select(RolloutTarget)
            .where(RolloutTarget.rollout_id == rollout.id, RolloutTarget.state == M.PENDING, waits)
            .order_by(col(RolloutTarget.position))
            .limit(MAX_FAILURES)
        )
    ) if window_waits else ()
    gate = fleet.waves[rollout.wave].approval if rollout.wave < len(fleet.waves) else None
    errors = errors_of(session, rollout.id) - rollout.forgiven
    return RolloutReport(
        rollout.id,
        rollout.run_id,
        rollout.step_id,
        rollout.state,
        rollout.targets,
        rollout.wave,
        waves,
        dict(totals),
        errors,
        rollout.allowed_errors,
        failures,
        left,
        deadline_at,
        rollout.next_wave_at,
        rollout.halted_reason,
        len(rollout.approvals),
        gate.min_approvals if gate else 0,
        list(gate.approvers) if gate else [],
        rollback,
        window_waits,
        windows,
    )


def outcomes(session: Session, rollout: Rollout, fleet: Fleet) -> list[dict[str, object]]:
    """Every tenant's outcome, in rollout order (the CSV's rows)."""
    assert rollout.id is not None
    out: list[dict[str, object]] = []
    for t in session.exec(
        select(RolloutTarget)
        .where(RolloutTarget.rollout_id == rollout.id)
        .order_by(col(RolloutTarget.position))
    ):
        rolled = t.state in (M.RB_PENDING, M.RB_SENDING, M.ROLLED, M.RB_FAILED, M.RB_UNKNOWN)
        called = t.state not in (M.WAITING, M.PENDING, M.SKIPPED)
        out.append(
            {
                "tenant": t.tenant_id,
                "wave": t.wave + 1,
                "wave_name": fleet.wave_name(t.wave),
                "position": t.position + 1,
                "state": t.state,
                "status": t.status,
                "attempts": t.attempts,
                "error": t.error or (t.waits_for if t.state == M.PENDING else None),
                "rollback_status": t.rollback_status,
                "rollback_error": t.rollback_error,
                "idempotency_key": key_of(rollout.id, t, rollback=rolled) if called else None,
                "started_at": t.started_at.isoformat() if t.started_at else None,
                "finished_at": t.finished_at.isoformat() if t.finished_at else None,
            }
        )
    return out


def of_run(session: Session, run: str) -> list[tuple[Rollout, list[dict[str, object]]]]:
    """The rollouts of a run (its id, or a work item's ref: its newest run that has one) and every
    tenant's outcome; NotFound when there are none."""
    if run.isdigit():
        runs = [int(run)]
    else:
        item = session.exec(select(WorkItem).where(WorkItem.ref == run.upper())).first()
        if item is None:
            raise NotFound(f"no work item {run.upper()}")
        runs = [r for r in session.exec(select(RunbookRun.id).where(RunbookRun.work_item_id == item.id)
                                        .order_by(col(RunbookRun.id).desc())) if r is not None]
    for run_id in runs:
        found = list(session.exec(select(Rollout).where(Rollout.run_id == run_id).order_by(col(Rollout.id))))
        if found:
            out = []
            for rollout in found:
                snapshot_run = session.get(RunbookRun, rollout.run_id)
                assert snapshot_run is not None
                step = runbook_of(snapshot_of(session, snapshot_run)).step(rollout.step_id)
                assert isinstance(step, HttpStep) and step.fleet is not None
                out.append((rollout, outcomes(session, rollout, step.fleet)))
            return out
    raise NotFound(f"run {run} has no rollout (give a run id, or a work item such as INC-3)")
