"""The background jobs, listed once.

A server (`serve`, `socket`) runs each on its own interval in the scheduler
(`bot.scheduler`); the console (`opsloop shell`) runs them all, in this order,
after every line and at every moment `tick` stops at. Periodic work that is
claimed per period (the digest, audit checkpoints, retention) is the
scheduler's alone: it has a time of day, not a backlog.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from bot.bootstrap import Services

log = logging.getLogger(__name__)

SWEEP_JOB = "timers.sweep"
LOOPS_JOB = "loops.sweep"
LOOPS_EVERY = 15.0  # seconds: cadence notices and overdue-loop reports; minutes matter, not seconds
REMEDIATION_JOB = "remediation.work"
ROLLOUT_JOB = "rollouts.work"
ROLLOUT_BUDGET = 5.0  # seconds a rollout pass claims new calls before it waits for those in flight


@dataclass(frozen=True)
class Job:
    id: str
    every: float  # seconds between runs in a server
    run: Callable[[], object]


def polling_jobs(services: Services, every: float | None = None) -> list[Job]:
    """The jobs that work off a backlog. `every` is a server's sweep interval; without it (the
    console) each pass runs until nothing is due."""
    interval = every if every is not None else services.settings.sweep_interval
    return [
        Job(LOOPS_JOB, LOOPS_EVERY, partial(_loops_sweep, services)),
        # a sweep stops taking new batches within the interval, so under a steady stream of due
        # timers runs do not pile up behind one another
        Job(SWEEP_JOB, interval, partial(services.sweeper.run_safely,
                                         budget=every * 0.5 if every is not None else None)),
        # approved http steps: a job of their own, so a slow API never delays timers (and vice versa)
        Job(REMEDIATION_JOB, interval, services.remediation.run_safely),
        # fleet rollouts: a pass claims until nothing is due or its budget is spent (then waits for the
        # calls in flight), so a 10,000-tenant wave is worked through steadily
        Job(ROLLOUT_JOB, interval, partial(services.rollout_worker.run_safely,
                                           budget=max(interval, ROLLOUT_BUDGET))),
    ]


def _loops_sweep(services: Services) -> None:
    try:
        services.loops.sweep()
    except Exception:  # a failed pass is logged and retried on the next tick
        log.exception("feedback loop sweep failed")
