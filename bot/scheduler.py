"""The scheduler inside `serve` and `socket`: APScheduler jobs that sweep due timers and post the digest.

Every replica runs one; the sweeper's claim makes each timer fire once however
many replicas sweep (see opsloop.timers.sweeper), and the digest's claim of the
local day makes it post once a day (see opsloop.digest.service). Audit
checkpoints and retention claim their period the same way
(opsloop.compliance.claims).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.bootstrap import Services
from bot.jobs import LOOPS_JOB, REMEDIATION_JOB, ROLLOUT_JOB, SWEEP_JOB, polling_jobs

log = logging.getLogger(__name__)
DIGEST_JOB = "digest.daily"
CHECKPOINT_JOB = "audit.checkpoint"
CHECKPOINT_POLL = 30.0  # seconds; each `audit.checkpoint_every` period is claimed once, by one replica
RETENTION_JOB = "retention.daily"
RETENTION_POLL = 3600.0  # seconds; each local day is claimed once, by one replica
POLLING_JOBS = frozenset({SWEEP_JOB, REMEDIATION_JOB, LOOPS_JOB, ROLLOUT_JOB})


class _ExpectedOverlap(logging.Filter):
    """A polling job still busy when its next turn comes is skipped, by design (`max_instances=1`,
    `coalesce`): the running pass picks up whatever the skipped one would have. APScheduler warns
    about every skip, which under a stream of due timers is several times a minute of noise that
    teaches operators to ignore warnings; those (and only those) are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = record.args[0] if isinstance(record.args, tuple) and record.args else None
        return not (record.msg.startswith("Execution of job") and "running instances" in record.msg
                    and getattr(job, "id", None) in POLLING_JOBS)


_apscheduler_log = logging.getLogger("bot.scheduler.apscheduler")
_apscheduler_log.addFilter(_ExpectedOverlap())


def build_scheduler(services: Services, *, interval: float | None = None) -> BackgroundScheduler:
    """A scheduler (not started) sweeping every `interval` seconds (default: OPSLOOP_SWEEP_INTERVAL).

    `coalesce` folds runs missed while a sweep was busy into one, and
    `max_instances=1` never overlaps two sweeps of one replica.
    """
    every = interval if interval is not None else services.settings.sweep_interval
    scheduler = BackgroundScheduler(timezone=UTC, logger=_apscheduler_log)
    for job in polling_jobs(services, every):  # overdue work is done right after start
        scheduler.add_job(job.run, "interval", seconds=job.every, id=job.id, coalesce=True, max_instances=1,
                          misfire_grace_time=None, next_run_time=datetime.now(UTC))
    if services.checkpoints.signer is not None:
        scheduler.add_job(services.checkpoints.run_safely, "interval", seconds=CHECKPOINT_POLL,
                          id=CHECKPOINT_JOB, coalesce=True, max_instances=1, misfire_grace_time=None,
                          next_run_time=datetime.now(UTC))
    if services.retention.configured:
        scheduler.add_job(services.retention.run_safely, "interval", seconds=RETENTION_POLL, id=RETENTION_JOB,
                          coalesce=True, max_instances=1, misfire_grace_time=None,
                          next_run_time=datetime.now(UTC))
    digest = services.policy.digest
    if digest is not None:
        # at `digest.at` local time on `digest.days`, and once right at start: a restart that
        # straddled the time catches up (run_due posts only today's, only if nobody did)
        trigger = CronTrigger(day_of_week=",".join(str(day) for day in sorted(digest.days)),
                              hour=digest.at.hour, minute=digest.at.minute,
                              timezone=ZoneInfo(services.policy.timezone))
        scheduler.add_job(services.digests.run_safely, trigger, id=DIGEST_JOB, coalesce=True,
                          max_instances=1, misfire_grace_time=None, next_run_time=datetime.now(UTC))
    return scheduler


class SchedulerWorker:
    """The scheduler as one of `services.background` (started and stopped with the server)."""

    def __init__(self, services: Services, *, interval: float | None = None) -> None:
        self.services = services
        self.interval = interval
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        self._scheduler = start_scheduler(self.services, interval=self.interval)

    def stop(self) -> None:
        if self._scheduler is not None:
            stop_scheduler(self._scheduler)
            self._scheduler = None


def start_scheduler(services: Services, *, interval: float | None = None) -> BackgroundScheduler:
    services.health.schedule_daily()  # the daily health recompute is a durable timer this sweeps
    services.heartbeats.arm()  # every heartbeat has its deadline (a durable timer) from now on
    services.schedules.arm()  # every schedule has its next tick (a durable timer); a missed one fires once
    scheduler = build_scheduler(services, interval=interval)
    scheduler.start()
    log.info("timer sweeper started (every %ss)", scheduler.get_job(SWEEP_JOB).trigger.interval_length)
    return scheduler


def stop_scheduler(scheduler: BackgroundScheduler, *, wait: bool = True) -> None:
    """Stop sweeping; with `wait`, a sweep in progress finishes (and commits) first."""
    if scheduler.running:
        scheduler.shutdown(wait=wait)
