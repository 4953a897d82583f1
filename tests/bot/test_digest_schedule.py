"""The daily digest after a restart that straddled its time: the real scheduler's start-up run catches up
once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from bot.bootstrap import bootstrap
from bot.scheduler import DIGEST_JOB, build_scheduler, stop_scheduler
from bot.settings import Settings
from tests.core.digest.test_schedule import outbox_rows, runs
from tests.support import FakeClock


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_restart_that_straddled_the_time_catches_up_once(settings: Settings, clock: FakeClock) -> None:
    clock.current = datetime(2026, 11, 23, 6, 30, tzinfo=UTC)  # 07:30: the replica goes down before 08:00
    first = bootstrap(settings, clock=clock)
    assert first.digests.run_due() is False
    first.db.dispose()
    clock.current = datetime(2026, 11, 23, 9, 45, tzinfo=UTC)  # back at 10:45, past the time
    for _ in range(2):  # started (and restarted) with the real scheduler: its start-up run catches up
        services = bootstrap(settings, clock=clock)
        scheduler = build_scheduler(services, interval=3600)
        job = scheduler.get_job(DIGEST_JOB)
        assert str(job.trigger) == "cron[day_of_week='0,1,2,3,4', hour='8', minute='0']"
        scheduler.start()
        try:
            for _ in range(200):
                if runs(services):
                    break
                threading.Event().wait(0.02)
        finally:
            stop_scheduler(scheduler)
        assert len(runs(services)) == 1
        assert [r.key for r in outbox_rows(services)] == ["digest:2026-11-23", "digest:2026-11-23:chart"]
        services.db.dispose()
