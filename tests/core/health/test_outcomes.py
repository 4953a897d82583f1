"""Renewal outcomes: the CSV (all or nothing, rows named), renewal signals, and NRR / gross retention."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.bootstrap import Services
from bot.cli import main
from bot.settings import Settings
from opsloop.health.models import RenewalOutcome
from opsloop.health.outcomes import ALL, retention
from opsloop.health.signals import SignalError
from opsloop.models import AuditEvent
from tests.support import FakeClock

HEADER = "tenant,date,outcome,arr_after\n"


def rows(services: Services) -> list[tuple[str, date, str, int, int]]:
    with services.db.transaction() as session:
        return [(r.tenant_id, r.date, r.outcome, r.arr_before, r.arr_after) for r in session.exec(
            select(RenewalOutcome).order_by(col(RenewalOutcome.tenant_id)))]


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


def test_renewal_signals_record_outcomes_all_or_nothing(services: Services, clock: FakeClock) -> None:
    done = services.health.ingest([
        {"tenant": "acme", "kind": "renewal", "outcome": "renewed", "value": 480000, "at": "2026-10-31T00:00:00Z"},
        {"tenant": "globex", "kind": "usage", "value": -0.2, "at": "2026-11-23T08:00:00Z"}], source="crm")
    assert (done.stored, done.tenants) == (2, ["acme", "globex"])
    assert rows(services) == [("acme", date(2026, 10, 31), "renewed", 480000, 480000)]
    for bad, field in [
        ({"tenant": "acme", "kind": "renewal", "value": 1, "at": "2026-10-31T00:00:00Z"}, "[1].outcome"),
        ({"tenant": "acme", "kind": "usage", "outcome": "renewed", "value": 0.1, "at": "2026-10-31T00:00:00Z"},
         "[1].outcome"),
        ({"tenant": "acme", "kind": "renewal", "outcome": "churned", "value": 9, "at": "2026-10-31T00:00:00Z"},
         "[1].value"),
        ({"tenant": "acme", "kind": "renewal", "outcome": "renewed", "value": 9.5, "at": "2026-10-31T00:00:00Z"},
         "[1].value"),
        ({"tenant": "acme", "kind": "renewal", "outcome": "renewed", "value": 9, "at": "2029-01-01T00:00:00Z"},
         "[1].at"),
    ]:
        with pytest.raises(SignalError) as error:
            services.health.ingest([{"tenant": "initech", "kind": "renewal", "outcome": "churned", "value": 0,
                                     "at": "2026-09-01T00:00:00Z"}, bad], source="crm")
        assert error.value.field == field
    assert len(rows(services)) == 1


def test_nrr_and_gross_retention_per_tier_and_quarter(services: Services) -> None:
    services.health.ingest([
        {"tenant": "acme", "kind": "renewal", "outcome": "expanded", "value": 600000, "at": "2026-10-31T00:00:00Z"},
        {"tenant": "globex", "kind": "renewal", "outcome": "contracted", "value": 48000, "at": "2026-06-30T00:00:00Z"},
        {"tenant": "initech", "kind": "renewal", "outcome": "churned", "value": 0, "at": "2026-05-15T00:00:00Z"},
    ], source="crm")
    with services.db.transaction() as session:
        found = retention(session, since=date(2025, 11, 23), until=date(2026, 11, 23))
    total = found[(ALL, ALL)]
    # before 480,000 + 96,000 + 12,000 = 588,000; after 600,000 + 48,000 = 648,000
    assert (total.renewals, total.arr_before, total.arr_after) == (3, 588000, 648000)
    assert total.nrr == pytest.approx(648000 / 588000)
    assert total.grr == pytest.approx((480000 + 48000) / 588000)  # expansion does not count
    assert found[("enterprise", ALL)].nrr == pytest.approx(1.25)
    assert found[("mid-market", ALL)].grr == pytest.approx(0.5)
    assert found[("smb", ALL)].nrr == 0
    assert found[(ALL, "2026-Q2")].renewals == 2 and found[(ALL, "2026-Q4")].renewals == 1
    text = services.commands.handle("/health", "report", actor="U0CEO").message
    assert text is not None and text.body is not None
    assert "• all: NRR 110% · gross 90% · 3 renewals, $588,000 up → $648,000" in text.body
    assert "• enterprise: NRR 125% · gross 100%" in text.body
    assert "• 2026-Q2: NRR 44% · gross 44% · 2 renewals" in text.body  # 48,000 of 108,000
