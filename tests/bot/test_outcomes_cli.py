"""Renewal outcomes from the shell: `opsloop accounts outcomes FILE.csv`, all or nothing, rows named."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import select

from bot.bootstrap import Services
from bot.cli import main
from bot.settings import Settings
from opsloop.models import AuditEvent
from tests.core.health.test_outcomes import HEADER, rows


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("OPSLOOP_CONFIG", str(settings.config))
    monkeypatch.setenv("OPSLOOP_RUNBOOKS_DIR", str(settings.runbooks_dir))


def test_the_csv_records_every_row_with_the_arr_before(
        services: Services, cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text(HEADER + "acme,2026-10-31,expanded,600000\nglobex,2026-06-30,churned,\n"
                    "initech,2026-03-15,contracted,6000\n")
    assert main(["accounts", "outcomes", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: 3 recorded, 0 updated, 0 unchanged"
    assert rows(services) == [("acme", date(2026, 10, 31), "expanded", 480000, 600000),
                              ("globex", date(2026, 6, 30), "churned", 96000, 0),
                              ("initech", date(2026, 3, 15), "contracted", 12000, 6000)]
    # again, with one corrected: replaced in place, nothing doubled
    path.write_text(HEADER + "acme,2026-10-31,renewed,480000\nglobex,2026-06-30,churned,0\n")
    assert main(["accounts", "outcomes", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: 0 recorded, 1 updated, 1 unchanged"
    assert rows(services)[0] == ("acme", date(2026, 10, 31), "renewed", 480000, 480000)
    with services.db.transaction() as session:
        assert len(session.exec(select(AuditEvent).where(AuditEvent.action == "account.outcome")).all()) == 4


@pytest.mark.parametrize(("body", "problem"), [
    ("acme,2026-10-31,renewed,480000\nhooli,2026-10-31,renewed,1000\n",
     "row 3: tenant: unknown tenant 'hooli'"),
    ("acme,2026-10-31,won,480000\n", "row 2: outcome: Input should be 'renewed', 'expanded', 'contracted' or"),
    ("acme,31/10/2026,renewed,480000\n", "row 2: date:"),
    ("acme,2026-10-31,churned,5\n", "row 2: arr_after: a churned account keeps no ARR"),
    ("acme,2026-10-31,renewed,\n", "row 2: arr_after: a renewed account has ARR after its renewal"),
    ("acme,2026-10-31,renewed,-3\n", "row 2: arr_after:"),
    ("acme,2028-10-31,renewed,1\n", "row 2: date: 2028-10-31 is more than a year ahead"),
    ("acme,2026-10-31,renewed,1\nacme,2026-10-31,churned,0\n", "row 3: acme 2026-10-31 is also row 2"),
    ("acme,2026-10-31,renewed\n", "row 2: expected 4 columns"),
])
def test_a_bad_row_stores_nothing_and_exits_2_naming_it(
        services: Services, cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        body: str, problem: str) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text(HEADER + "initech,2026-03-15,renewed,12000\n" + body.replace("row 2", "row 3").replace(
        "row 3: acme 2026-10-31 is also row 2", "row 4: acme 2026-10-31 is also row 3"))
    assert main(["accounts", "outcomes", str(path)]) == 2
    err = capsys.readouterr().err
    expected = problem.replace("row 3", "row 4").replace("row 2", "row 3").replace(
        "row 4: acme 2026-10-31 is also row 3", "row 4: acme 2026-10-31 is also row 3")
    assert expected in err, err
    assert rows(services) == []


def test_a_wrong_header_is_refused(services: Services, cli_env: None, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text("account,when,result,arr\nacme,2026-10-31,renewed,1\n")
    assert main(["accounts", "outcomes", str(path)]) == 2
    assert "the header must be tenant,date,outcome,arr_after" in capsys.readouterr().err
