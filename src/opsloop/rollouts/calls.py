"""The rollout worker: claims tenants of running rollouts, calls each once, records what happened.

A claim is one transaction (the audit chain's head, then the rollout row) that moves up to
`max_concurrency` minus the calls already in flight from `pending` to `sending` with a lease,
committed before any byte leaves; the row lock makes replicas take turns, so each tenant is claimed
once. Results are recorded in batches (one transaction for whatever finished together), each tenant's
outcome audited. A `sending` tenant whose lease ran out (its worker died mid-call) becomes `unknown`:
never called again by itself.

Each tenant's call has its own Idempotency-Key, `opsloop-ro<rollout>-<tenant>-g<generation>` (its
rollback: `...-rollback`), the same for every attempt.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.remediation.http import Call, HttpExecutor, Outcome
from opsloop.remediation.service import worker_name
from opsloop.rollouts import models as M
from opsloop.rollouts.claims import Claim, claimable, flying, in_window, record_outcome
from opsloop.rollouts.models import Rollout, RolloutTarget, key_of
from opsloop.rollouts.report import due
from opsloop.rollouts.requests import RunView, call_of, rollback_request
from opsloop.rollouts.service import Rollouts, audit_rollout
from opsloop.runbooks.render import RenderError
from opsloop.runbooks.schema import HttpStep
from opsloop.types import OPSLOOP

log = logging.getLogger(__name__)
LEASE_MARGIN = timedelta(seconds=30)
PROGRESS_EVERY = 1.0  # seconds between progress edits asked for by one worker
MAX_THREADS = 64
LOOK_EVERY = 1.0  # seconds between looks for other claimable rollouts while recording results
GATHER_AT_MOST = 0.05  # seconds a finished call may wait for others to be recorded with it


def _threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="opsloop-rollout")


@dataclass(eq=False)
class RolloutWorker:
    db: Database
    clock: Clock
    rollouts: Rollouts
    executor: HttpExecutor
    worker: str = field(default_factory=worker_name, kw_only=True)
    _pool: ThreadPoolExecutor = field(default_factory=_threads, init=False)
    _known: dict[int, tuple[HttpStep, str]] = field(default_factory=dict, init=False)  # rollout -> step, item
    _said: dict[int, float] = field(default_factory=dict, init=False)
    _looked: float = field(default=float("-inf"), init=False)  # when other rollouts were last looked for

    # ------------------------------------------------------------------ the loop

    def work(self, budget: float = 30.0) -> int:
        """Call tenants until nothing is claimable, or `budget` seconds have passed (then the calls in
        flight are waited for, each bounded by its own timeout); returns how many were called."""
        self.recover()
        self.advance_due()
        ends = time.monotonic() + budget
        running: dict[Future[Outcome], Claim] = {}
        called = 0
        results: list[tuple[Claim, Outcome]] = []
        last_round = 0.0
        while True:
            free = MAX_THREADS - len(running) if time.monotonic() < ends else 0
            # what finished is recorded and the next tenants claimed in one transaction, committed
            # before any of them is called
            began = time.monotonic()
            for claim in self.record(results, free=free):
                running[self._pool.submit(self.executor.execute, claim.call, claim.key)] = claim
                called += 1
            last_round = time.monotonic() - began
            if not running:
                if not results:
                    return called
                results = []  # one more look at every rollout (recording looks at others now and then)
                continue
            done = self._gather(set(running), last_round)
            results = []
            for future in done:
                claim = running.pop(future)
                try:
                    results.append((claim, future.result()))
                except Exception:  # the lease runs out and the tenant becomes `unknown`: a person decides
                    log.exception("rollout call for %s could not be completed", claim.tenant)

    @staticmethod
    def _gather(running: set[Future[Outcome]], last_round: float) -> set[Future[Outcome]]:
        """The calls that finished: at least one, then the others as they finish, until all are done
        or as long again as the last round of recording and claiming took (at most GATHER_AT_MOST).
        A round's database work costs about the same for one result as for eight, and a call that
        finishes while a round runs waits for its end anyway: gathering shares that cost among more
        calls, and a slow tenant holds the others back by one round's length at most."""
        done, rest = wait(running, return_when=FIRST_COMPLETED)
        until = time.monotonic() + min(last_round, GATHER_AT_MOST)
        while rest:
            left = until - time.monotonic()
            if left <= 0:
                break
            more, rest = wait(rest, timeout=left, return_when=FIRST_COMPLETED)
            done |= more
        return done

    def run_safely(self, budget: float = 30.0) -> int:
        """The scheduler's job."""
        try:
            return self.work(budget)
        except Exception:
            log.exception("rollout work failed; the next run retries")
            return 0

    # ------------------------------------------------------------------ claiming

    def claim(self, free: int) -> list[Claim]:
        """Up to `free` tenants of running (or rolling back) rollouts, moved to `sending`."""
        if free <= 0:
            return []
        with self.db.engine.connect() as connection:  # a cheap look before taking any lock
            ids = claimable(connection)
        claims: list[Claim] = []
        for rollout_id in ids:
            if len(claims) >= free:
                break
            claims += self._claim(rollout_id, free - len(claims))
        return claims

    def _claim(self, rollout_id: int, free: int) -> list[Claim]:
        now = self.clock.now()
        with self.db.transaction() as session:
            return self._claim_locked(session, self.rollouts.locked(session, rollout_id), free, now)

    def _claim_locked(self, session: Session, rollout: Rollout, free: int, now: datetime) -> list[Claim]:
        """Claim in a transaction that holds the chain's head and the rollout row (the lock order)."""
        rollout_id = rollout.id
        assert rollout_id is not None
        if free <= 0 or rollout.state not in (M.RUNNING, M.ROLLING_BACK):
            return []
        rollback = rollout.state == M.ROLLING_BACK
        step, ref = self._facts(session, rollout)
        assert step.fleet is not None
        take = min(free, step.fleet.max_concurrency - flying(session, rollout_id))
        if take <= 0:
            return []
        if rollback or step.fleet.tenant_windows == "ignore":
            targets = session.exec(
                select(RolloutTarget)
                .where(
                    RolloutTarget.rollout_id == rollout_id,
                    RolloutTarget.state == (M.RB_PENDING if rollback else M.PENDING),
                )
                .order_by(col(RolloutTarget.position))
                .limit(take)
            ).all()
        else:
            targets, aside = in_window(session, rollout, take, now, self.rollouts.policy.timezone)
            if aside:
                audit_rollout(session, ref, rollout, "rollout.window.waiting", now,
                              {"step": rollout.step_id, "tenants": aside}, actor=OPSLOOP)
                self.rollouts.progress(session, rollout, now)
        view = self.rollouts.view(session, rollout) if rollback and targets else None
        claims: list[Claim] = []
        for target in targets:
            assert target.id is not None
            spec = self._spec(session, view, step, target)
            if spec is None:
                continue
            target.state = M.RB_SENDING if rollback else M.SENDING
            target.not_before = target.waits_for = None
            target.claimed_by, target.started_at = self.worker, now
            target.lease_until = now + timedelta(seconds=spec.budget()) + LEASE_MARGIN
            session.add(target)
            key = key_of(rollout_id, target, rollback=rollback)
            claims.append(Claim(target.id, rollout_id, target.tenant_id, spec, key, rollback))
        if claims:
            audit_rollout(session, ref, rollout, "rollout.sending", now, {
                "step": rollout.step_id,
                "worker": self.worker,
                "rollback": rollback,
                "calls": {c.tenant: c.key for c in claims},
            }, actor=OPSLOOP)
        return claims

    def _facts(self, session: Session, rollout: Rollout) -> tuple[HttpStep, str]:
        """The rollout's step (from the pinned runbook) and its item's ref: they never change."""
        assert rollout.id is not None
        found = self._known.get(rollout.id)
        if found is None:
            view = self.rollouts.view(session, rollout)
            found = self._known[rollout.id] = (view.step, view.item.ref)
        return found

    def _spec(
        self, session: Session, view: RunView | None, step: HttpStep, target: RolloutTarget
    ) -> Call | None:
        if view is None:
            return call_of(step, target.request)
        assert step.rollback is not None
        try:
            request = rollback_request(view, step.rollback, target)
        except RenderError as error:
            target.state, target.rollback_error = M.RB_FAILED, f"cannot render: {error}"
            session.add(target)
            return None
        return call_of(step, request)

    # ------------------------------------------------------------------ recording

    def record(self, results: list[tuple[Claim, Outcome]], *, free: int = 0) -> list[Claim]:
        """Write each outcome, each audited, and move each rollout on (budget, waves): one transaction
        and one append to the audit chain for the whole batch. In the same transaction, up to `free`
        next tenants of those rollouts are claimed (returned; committed before they are called), then
        any other rollout's in transactions of their own."""
        if not results:
            return self.claim(free)
        now = self.clock.now()
        claims: list[Claim] = []
        with self.db.transaction() as session:
            audit.lock_chain(session)
            entries: list[audit.Entry] = []
            touched: dict[int, Rollout] = {}
            erred: set[int] = set()  # the rollouts some of whose results count against the budget
            by_rollout: dict[int, list[tuple[Claim, Outcome]]] = {}
            for claim, outcome in results:
                by_rollout.setdefault(claim.rollout_id, []).append((claim, outcome))
            for rollout_id in sorted(by_rollout):
                rollout = touched[rollout_id] = self.rollouts.locked(session, rollout_id)
                _, ref = self._facts(session, rollout)
                batch = by_rollout[rollout_id]
                targets = {
                    t.id: t
                    for t in session.exec(
                        select(RolloutTarget)
                        .where(col(RolloutTarget.id).in_([c.target_id for c, _ in batch]))
                        .with_for_update()
                    )
                }
                for claim, outcome in batch:
                    if outcome.state in M.ERRORS:
                        erred.add(rollout_id)
                    entries.append(
                        record_outcome(session, rollout, targets[claim.target_id], claim, outcome, ref, now,
                                       self.worker)
                    )
            audit.record_many(session, entries)
            for rollout_id, rollout in touched.items():
                self.rollouts.settle(session, rollout, now, errors_added=rollout_id in erred)
                self._progress(session, rollout, now)
            for rollout_id in sorted(touched):
                claims += self._claim_locked(session, touched[rollout_id], free - len(claims), now)
            for rollout_id in self._others(session, touched) if len(claims) < free else []:
                if len(claims) >= free:
                    break
                if rollout_id not in touched:
                    rollout = self.rollouts.locked(session, rollout_id)
                    claims += self._claim_locked(session, rollout, free - len(claims), now)
        return claims

    def _others(self, session: Session, touched: dict[int, Rollout]) -> list[int]:
        """The claimable rollouts, looked up after recording at most once a second while the worker
        has results of its own to record (each round looked, for a second rollout that seldom
        exists); a rollout started meanwhile is picked up within a second."""
        moment = time.monotonic()
        if touched and moment - self._looked < LOOK_EVERY:
            return []
        self._looked = moment
        return claimable(session.connection())

    def _progress(self, session: Session, rollout: Rollout, now: datetime) -> None:
        """The progress message is edited at most once a second per rollout from here (the turns a
        rollout takes, waves and halts, are said by themselves)."""
        assert rollout.id is not None
        last = self._said.get(rollout.id)
        moment = time.monotonic()
        if last is None or moment - last >= PROGRESS_EVERY:
            self._said[rollout.id] = moment
            self.rollouts.progress(session, rollout, now)

    def _subject(self, session: Session, rollout: Rollout) -> str:
        return self._facts(session, rollout)[1]

    # ------------------------------------------------------------------ recovery and pauses

    def recover(self) -> int:
        """`sending` tenants whose lease ran out become `unknown`: their worker died mid-call."""
        now = self.clock.now()
        with self.db.engine.connect() as connection:
            stale = list(
                connection.execute(
                    select(RolloutTarget.rollout_id)
                    .where(col(RolloutTarget.state).in_(M.IN_FLIGHT), col(RolloutTarget.lease_until) < now)
                    .distinct()
                ).scalars()
            )
        for rollout_id in stale:
            with self.db.transaction() as session:
                rollout = self.rollouts.locked(session, rollout_id)
                targets = session.exec(
                    select(RolloutTarget).where(
                        RolloutTarget.rollout_id == rollout_id,
                        col(RolloutTarget.state).in_(M.IN_FLIGHT),
                        col(RolloutTarget.lease_until) < now,
                    )
                ).all()
                for target in targets:
                    why = (
                        f"the worker {target.claimed_by} stopped while calling (its lease ended "
                        f"{target.lease_until:%H:%M:%S} UTC); the request may or may not have arrived"
                    )
                    if target.state == M.SENDING:
                        target.state, target.error, target.orphaned = M.UNKNOWN, why, True
                    else:
                        target.state, target.rollback_error = M.RB_UNKNOWN, why
                    target.lease_until, target.finished_at = None, now
                    session.add(target)
                    audit_rollout(session, self._subject(session, rollout), rollout, "rollout.call.unknown",
                                  now, {"tenant": target.tenant_id, "error": why}, actor=OPSLOOP)
                self.rollouts.settle(session, rollout, now)
                self.rollouts.progress(session, rollout, now)
        return len(stale)

    def advance_due(self) -> None:
        """Rollouts whose pause between waves is over start their next wave."""
        now = self.clock.now()
        with self.db.transaction() as session:
            ready = due(session, now)
        for rollout_id in ready:
            with self.db.transaction() as session:
                rollout = self.rollouts.locked(session, rollout_id)
                if (
                    rollout.state == M.PAUSING
                    and rollout.next_wave_at is not None
                    and rollout.next_wave_at <= now
                ):
                    self.rollouts.begin_wave(session, rollout, now)
