"""Renewal outcomes: renewal signals (all or nothing), and NRR / gross retention. The CSV
(`opsloop accounts outcomes`) is tests/bot/test_outcomes_cli.py."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.health.models import RenewalOutcome
from opsloop.health.outcomes import ALL, retention
from opsloop.health.signals import SignalError
from tests.support import FakeClock

HEADER = "tenant,date,outcome,arr_after\n"


def rows(services: Core) -> list[tuple[str, date, str, int, int]]:
    with services.db.transaction() as session:
        return [(r.tenant_id, r.date, r.outcome, r.arr_before, r.arr_after) for r in session.exec(
            select(RenewalOutcome).order_by(col(RenewalOutcome.tenant_id)))]


def test_renewal_signals_record_outcomes_all_or_nothing(services: Core, clock: FakeClock) -> None:
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


def test_nrr_and_gross_retention_per_tier_and_quarter(services: Core) -> None:
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
