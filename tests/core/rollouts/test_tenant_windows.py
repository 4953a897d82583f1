"""Tenants' own maintenance windows (issue 22 part 6): with `tenant_windows: respect` a tenant whose
catalog window is closed is not called until it opens, its wave waits for it, and the others go on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlmodel import col, select

from opsloop.accounts import import_catalog
from opsloop.core import Core
from opsloop.db import Database
from opsloop.errors import ConfigError
from opsloop.messages import Message
from opsloop.models import Account, AuditEvent, OutboxMessage
from opsloop.rollouts import models as M
from opsloop.tenant_windows import parse
from tests.core.rollouts.conftest import FLEET, STARTER, Target, catalog, rollout, start, states
from tests.support import FakeClock

# the FakeClock starts on Monday 2026-11-23 09:00 UTC: 10:00 in the policy's Europe/Berlin
# t02 closed now, t03 open; t01 has none; t04 (the next wave) is open from 13:00 UTC in its own zone only
WINDOWS = {"t02": "mon 14:00-15:00", "t03": "mon 09:00-12:00", "t04": "mon 08:00-09:00 America/New_York"}


def fleet_text(windows: str | None) -> str:
    text = FLEET.replace("select: {exclude: [acme, globex, initech]}", "select: {ids: [t01, t02, t03, t04]}")
    text = text.replace(
        "waves: [{name: canary, size: 1}, {percent: 10}, {percent: 40}, {rest: true}]",
        "waves: [{name: first, size: 3}, {rest: true}]",
    )
    return text.replace("    deadline: 24h\n", f"    deadline: 24h\n    tenant_windows: {windows}\n" if windows else
                        "    deadline: 24h\n")


@pytest.fixture(params=["respect"])
def windows(request: pytest.FixtureRequest) -> str | None:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def fleet_dir(fleet_dir: tuple[Path, Path], windows: str | None) -> tuple[Path, Path]:
    directory, config = fleet_dir
    (directory / "fleet-patch.yaml").write_text(fleet_text(windows))
    rows = catalog()
    for row in rows:
        if row["id"] in WINDOWS:
            row["window"] = WINDOWS[str(row["id"])]
    policy = yaml.safe_load(config.read_text())
    Path(policy["accounts"]).write_text(yaml.safe_dump(rows))
    return directory, config


def test_a_closed_window_is_waited_for_then_called_once(fleet: Core, target: Target, clock: FakeClock) -> None:
    start(fleet)
    fleet.rollout_worker.work()
    assert target.called() == ["t01", "t03"]  # no window, and an open one: called at once
    assert states(fleet)["t02"] == M.PENDING and states(fleet)["t04"] == M.WAITING  # its wave is not over
    assert rollout(fleet).state == M.RUNNING
    status = fleet.commands.handle("/runbook", "status INC-1", actor=STARTER).text
    assert "1 wait for their maintenance window" in status
    assert "waits for its maintenance window (mon 14:00-15:00 Europe/Berlin), opens Mon 2026-11-23 14:00" in status
    with fleet.db.transaction() as s:
        waiting = s.exec(select(AuditEvent).where(AuditEvent.action == "rollout.window.waiting")).all()
        assert len(waiting) == 1 and list(waiting[0].after["tenants"]) == ["t02"]
        progress = s.exec(select(OutboxMessage).where(OutboxMessage.update_key == "rollout:1")
                          .order_by(col(OutboxMessage.id).desc())).first()
        assert progress is not None
        assert "⏰ 1 wait for their window" in Message.from_json(progress.payload["message"]).plain()

    clock.current = datetime(2026, 11, 23, 12, 59, tzinfo=UTC)  # 13:59 in Berlin: still closed
    fleet.rollout_worker.work()
    assert target.called() == ["t01", "t03"]

    clock.current = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)  # 14:00 in Berlin: it opens
    fleet.rollout_worker.work()
    fleet.rollout_worker.work()
    assert target.called() == ["t01", "t03", "t02", "t04"]  # t02 once, then the next wave
    assert rollout(fleet).state == M.COMPLETED
    assert set(states(fleet).values()) == {M.SUCCEEDED}


@pytest.mark.parametrize("windows", [None, "ignore"], indirect=True)
def test_ignore_calls_every_tenant_at_once(fleet: Core, target: Target) -> None:
    start(fleet)
    fleet.rollout_worker.work()
    assert sorted(target.called()) == ["t01", "t02", "t03", "t04"]
    assert rollout(fleet).state == M.COMPLETED


def test_a_bad_window_is_refused_naming_the_row_and_nothing_is_stored(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("id,name,tier,window\ngood,Good,smb,sat;sun 01:00-05:00\nbad,Bad,smb,sun 02:00-26:00\n")
    with pytest.raises(ConfigError) as error:
        import_catalog(db, clock, path, actor="U0ADMIN")
    assert "row 2: window:" in str(error.value) and "row 3: window:" in str(error.value)
    with db.transaction() as session:
        assert session.exec(select(Account)).all() == []
    path.write_text('id,name,tier,window\ngood,Good,smb,"Sat,Sun  01:00-05:00"\n')  # written the house way
    assert import_catalog(db, clock, path, actor="U0ADMIN").created == 1
    with db.transaction() as session:
        good = session.get(Account, "good")
        assert good is not None and good.window == "sat,sun 01:00-05:00"


@pytest.mark.parametrize(
    ("text", "local", "is_open", "opens"),
    [
        ("sun 02:00-06:00", datetime(2026, 11, 29, 3, 0), True, datetime(2026, 12, 6, 2, 0)),
        ("sun 02:00-06:00", datetime(2026, 11, 29, 6, 0), False, datetime(2026, 12, 6, 2, 0)),
        ("sat,sun 01:00-05:00", datetime(2026, 11, 27, 12, 0), False, datetime(2026, 11, 28, 1, 0)),
        ("fri-mon 22:00-02:00", datetime(2026, 11, 24, 1, 0), True, datetime(2026, 11, 27, 22, 0)),
        ("mon-fri 22:00-02:00", datetime(2026, 11, 29, 1, 0), False, datetime(2026, 11, 30, 22, 0)),
        ("daily 23:00-24:00", datetime(2026, 11, 24, 23, 30), True, datetime(2026, 11, 25, 23, 0)),
        # its own zone: 09:00 in Berlin is 03:00 in New York; it next opens Sun 02:00 there, 08:00 here
        ("sun 02:00-06:00 America/New_York", datetime(2026, 11, 29, 9, 0), True, datetime(2026, 12, 6, 8, 0)),
        ("sat, sun 01:00 - 05:00", datetime(2026, 11, 28, 4, 59), True, datetime(2026, 11, 29, 1, 0)),
    ],
)
def test_a_window_is_read_in_local_time(text: str, local: datetime, is_open: bool, opens: datetime) -> None:
    zone = ZoneInfo("Europe/Berlin")
    at = local.replace(tzinfo=zone).astimezone(UTC)
    window = parse(text)
    assert window.is_open(at, "Europe/Berlin") is is_open
    assert window.opens_after(at, "Europe/Berlin") == opens.replace(tzinfo=zone).astimezone(UTC)


@pytest.mark.parametrize("text", ["sun", "sun 02:00", "sunday 02:00-06:00", "sun 02:00-02:00", "sun 24:00-02:00",
                                  "sun 02:60-03:00", "mon-xyz 01:00-02:00", "sun 02:00-06:00 Mars/Base"])
def test_bad_window_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"window|days|time"):
        parse(text)
