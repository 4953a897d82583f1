"""The scheduler sweeps on its own, in real time, and stops cleanly."""

from __future__ import annotations

import time

from sqlmodel import col, select

from bot.bootstrap import Services
from bot.scheduler import build_scheduler, stop_scheduler
from opsloop.sla.models import Timer
from opsloop.types import Severity


def test_the_scheduler_fires_due_timers_without_being_asked(services: Services) -> None:
    services.workitems.declare(actor="U0RESP1", title="db down", severity=Severity.SEV1)
    scheduler = build_scheduler(services, interval=0.05)
    job = scheduler.get_job("timers.sweep")
    assert (job.coalesce, job.max_instances) == (True, 1)
    scheduler.start()
    try:
        deadline = time.monotonic() + 5
        fired = []
        while time.monotonic() < deadline and not fired:
            with services.db.transaction() as s:
                fired = list(s.exec(select(Timer).where(col(Timer.fired_at).is_not(None))))
            time.sleep(0.02)
    finally:
        stop_scheduler(scheduler)
    assert [t.kind for t in fired] == ["page"]  # the sev1's first escalation level, due at once
    assert not scheduler.running
