"""Scheduled runbooks: one task per tick with two replicas (PostgreSQL and SQLite), once after downtime,
none with `catch_up: skip`; the task runs its runbook and is resolved when it completes."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.errors import ConfigError
from opsloop.models import AuditEvent, WorkItem
from opsloop.runbooks.models import RunbookRun
from opsloop.schedules.models import ScheduleState
from opsloop.schedules.service import TICK
from opsloop.table import Sources, assemble
from opsloop.timers.models import Timer
from tests.support import ROOT, FakeClock, at_once

MONDAY_9 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday; the tick is Monday 04:00 Berlin = 03:00 UTC
NEXT_TICK = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)

WEEKLY = """schema_version: 1
id: weekly-check
version: 1.0.0
title: Weekly check
owners: [U0SRE1]
inputs:
  days: {type: integer, required: true}
steps:
  - id: look
    type: manual
    title: "Look at what expires within {{ inputs.days }} days"
"""


@pytest.fixture
def files(tmp_path: Path) -> Callable[[str], tuple[Path, Path]]:
    def make(catch_up: str = "latest") -> tuple[Path, Path]:
        runbooks = tmp_path / "runbooks"
        if not runbooks.exists():
            shutil.copytree(ROOT / "runbooks", runbooks)
            (runbooks / "weekly-check.yaml").write_text(WEEKLY)
        policy = yaml.safe_load((ROOT / "opsloop.yml").read_text())
        policy["accounts"] = str(ROOT / "accounts.yml")
        policy["schedules"] = {"weekly": {"cron": "0 4 * * mon", "timezone": "Europe/Berlin",
                                          "runbook": "weekly-check", "inputs": {"days": 30},
                                          "catch_up": catch_up, "title": "Weekly check"}}
        config = tmp_path / f"opsloop-{catch_up}.yml"
        config.write_text(yaml.safe_dump(policy))
        return runbooks, config
    return make


@pytest.fixture
def replica(db_url: str, files: Callable[[str], tuple[Path, Path]]) -> Iterator[Callable[..., Core]]:
    built: list[Core] = []

    def make(clock: FakeClock, catch_up: str = "latest") -> Core:
        runbooks, config = files(catch_up)
        services = assemble(Sources(database_url=db_url, config=config, runbooks_dir=runbooks), clock=clock,
                            load_feeds=False)
        built.append(services)
        return services
    yield make
    for services in built:
        services.db.dispose()


def tasks(services: Core) -> list[WorkItem]:
    with services.db.transaction() as s:
        return list(s.exec(select(WorkItem).where(WorkItem.kind == "task").order_by(col(WorkItem.id))))


def pending_ticks(services: Core) -> list[datetime]:
    with services.db.transaction() as s:
        return list(s.exec(select(Timer.due_at).where(Timer.kind == TICK, col(Timer.fired_at).is_(None))))


def test_each_tick_opens_one_task_with_two_replicas(replica: Callable[..., Core]) -> None:
    clocks = [FakeClock(MONDAY_9), FakeClock(MONDAY_9)]
    one, two = replica(clocks[0]), replica(clocks[1])
    at_once([one.schedules.arm, two.schedules.arm])  # both start together: one pending tick
    assert pending_ticks(one) == [NEXT_TICK]
    for week in range(2):
        for clock in clocks:
            clock.current = NEXT_TICK + timedelta(weeks=week, seconds=1)
        at_once([one.sweeper.run_safely, two.sweeper.run_safely])
        at_once([one.sweeper.run_safely, two.sweeper.run_safely])
        assert [t.ref for t in tasks(one)] == [f"TSK-{n}" for n in range(1, week + 2)]
        assert pending_ticks(one) == [NEXT_TICK + timedelta(weeks=week + 1)]
    first = tasks(one)[0]
    assert first.title == "Weekly check (2026-11-30 04:00)" and first.labels["schedule"] == "weekly"
    with one.db.transaction() as s:
        run = s.exec(select(RunbookRun).where(RunbookRun.work_item_id == first.id)).one()
    assert run.runbook_id == "weekly-check" and run.inputs == {"days": 30} and run.state == "running"
    # the task works like any item: its checklist, and it is resolved when its runbook completes
    one.commands.handle("/runbook", "done TSK-1 look", actor="U0RESP1")
    assert one.workitems.get("TSK-1").item.state == "resolved"


def test_a_tick_missed_while_down_runs_once_at_the_next_start(replica: Callable[..., Core]) -> None:
    clock = FakeClock(MONDAY_9)
    replica(clock).schedules.arm()
    clock.current = NEXT_TICK + timedelta(weeks=3, hours=2)  # down for three ticks
    again = replica(clock)  # the restart
    again.schedules.arm()
    again.sweeper.run_safely()
    again.sweeper.run_safely()
    assert [t.ref for t in tasks(again)] == ["TSK-1"]
    assert pending_ticks(again) == [NEXT_TICK + timedelta(weeks=4)]
    with again.db.transaction() as s:
        ticked = s.exec(select(AuditEvent).where(AuditEvent.action == "schedule.ticked")).one()
    assert ticked.after["late_seconds"] == 3 * 7 * 86400 + 7200


def test_catch_up_skip_records_the_missed_tick_and_runs_nothing(replica: Callable[..., Core]) -> None:
    clock = FakeClock(MONDAY_9)
    replica(clock, "skip").schedules.arm()
    clock.current = NEXT_TICK + timedelta(days=1)
    again = replica(clock, "skip")
    again.schedules.arm()
    again.sweeper.run_safely()
    assert tasks(again) == []
    with again.db.transaction() as s:
        state = s.get(ScheduleState, "weekly")
        assert state is not None and state.skipped == 1 and state.ticks == 0
    assert pending_ticks(again) == [NEXT_TICK + timedelta(weeks=1)]
    clock.current = NEXT_TICK + timedelta(weeks=1, seconds=5)  # on time again: it runs
    again.sweeper.run_safely()
    assert [t.ref for t in tasks(again)] == ["TSK-1"]


def test_a_schedule_naming_a_runbook_that_is_not_there_refuses_to_start(
        files: Callable[[str], tuple[Path, Path]], db_url: str) -> None:
    runbooks, config = files("latest")
    (runbooks / "weekly-check.yaml").unlink()
    with pytest.raises(ConfigError, match=r"schedules\.weekly\.runbook: no runbook 'weekly-check'"):
        assemble(Sources(database_url=db_url, config=config, runbooks_dir=runbooks), load_feeds=False)
