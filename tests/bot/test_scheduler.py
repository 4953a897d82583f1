"""The scheduler sweeps on its own, in real time, and stops cleanly."""

from __future__ import annotations

import logging
import time

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES
from sqlmodel import col, select

from bot.bootstrap import Services
from bot.scheduler import build_scheduler, stop_scheduler
from opsloop.timers.models import Timer
from opsloop.types import Severity
from tests.support import wait_until


def test_the_scheduler_fires_due_timers_without_being_asked(services: Services) -> None:
    # opened by a monitor, not a person: nobody is responding yet, so its escalation chain pages at
    # once (a person who declares is taken as responding, and is not paged: sla.declared_meets_response)
    services.workitems.declare(actor="system:alertmanager", title="db down", severity=Severity.SEV1)
    scheduler = build_scheduler(services, interval=0.05)
    job = scheduler.get_job("timers.sweep")
    assert (job.coalesce, job.max_instances) == (True, 1)
    scheduler.start()
    fired: list[Timer] = []

    def swept() -> list[Timer]:
        with services.db.transaction() as s:
            fired[:] = s.exec(select(Timer).where(col(Timer.fired_at).is_not(None)))
        return fired

    try:
        wait_until(swept, what="the scheduler to fire the due timer")
    finally:
        stop_scheduler(scheduler)
    assert [t.kind for t in fired] == ["page"]  # the sev1's first escalation level, due at once
    assert not scheduler.running


def test_a_polling_job_skipped_while_still_busy_is_not_a_warning_but_other_jobs_still_warn(
    services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def slow_sweep(budget: float | None = None) -> int:
        time.sleep(0.3)
        return 0

    monkeypatch.setattr(services.sweeper, "run_safely", slow_sweep)
    caplog.set_level(logging.WARNING)
    scheduler = build_scheduler(services, interval=0.02)
    scheduler.add_job(time.sleep, "interval", seconds=0.02, args=[0.3], id="someone.else",
                      coalesce=True, max_instances=1)
    skipped: list[str] = []
    scheduler.add_listener(lambda event: skipped.append(event.job_id), EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    try:
        wait_until(lambda: {"timers.sweep", "someone.else"} <= set(skipped), what="both jobs to be skipped")
    finally:
        stop_scheduler(scheduler)
    assert {"timers.sweep", "someone.else"} <= set(skipped)  # both overlapped and were skipped
    warned = [r.getMessage() for r in caplog.records if "running instances" in r.getMessage()]
    assert warned and all('job "sleep (trigger' in message for message in warned)  # only the other job


def test_the_scheduler_and_the_console_run_the_one_list_of_background_jobs(services: Services) -> None:
    """Issue 14: the list of background jobs was kept twice (console.py, scheduler.py) and drifted."""
    from bot.console import Console
    from bot.jobs import polling_jobs

    listed = [job.id for job in polling_jobs(services)]
    assert listed == ["loops.sweep", "timers.sweep", "remediation.work", "rollouts.work"]
    scheduler = build_scheduler(services, interval=0.05)
    scheduled = [job.id for job in scheduler.get_jobs()]
    assert scheduled[:len(listed)] == listed  # then the periodic ones the policy asks for (the digest)
    assert set(scheduled[len(listed):]) <= {"digest.daily", "audit.checkpoint", "retention.daily"}
    assert [job.id for job in Console(services, user="U0RESP1").jobs] == listed
