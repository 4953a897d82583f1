"""`opsloop runbooks rollout RUN --csv`: every tenant's outcome of a fleet rollout, from the shell."""

from __future__ import annotations

import argparse
import csv
import io

import pytest

from bot.runbooks_cli import cmd_rollout
from bot.settings import Settings
from opsloop.core import Core
from opsloop.errors import UsageError
from tests.core.rollouts.conftest import Target, fleet, fleet_dir, start, target, tenant_ids

__all__ = ["fleet", "fleet_dir", "target"]  # the fleet's fixtures (tests/core/rollouts/conftest.py), used here


def test_the_cli_exports_every_tenants_outcome_as_csv(fleet: Core, target: Target, db_url: str,
                                                      fleet_dir: tuple, capsys: pytest.CaptureFixture[str]) -> None:
    target.fail = {"t05"}
    start(fleet)
    fleet.rollout_worker.work()
    settings = Settings(database_url=db_url, config=fleet_dir[1], runbooks_dir=fleet_dir[0])
    assert cmd_rollout(argparse.Namespace(run="INC-1", csv=True), settings) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["tenant"] for r in rows] == tenant_ids()
    failed = next(r for r in rows if r["tenant"] == "t05")
    assert (failed["state"], failed["status"], failed["wave_name"]) == ("failed", "500", "wave 2")
    assert failed["idempotency_key"] == "opsloop-ro1-t05-g1" and "patch failed on t05" in failed["error"]
    assert {r["state"] for r in rows if r["tenant"] != "t05"} == {"succeeded"}
    with pytest.raises(UsageError, match="has no rollout"):
        cmd_rollout(argparse.Namespace(run="999", csv=False), settings)
