"""Signal validation (all or nothing, errors naming the field) and the time series."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.health.models import HealthSignal
from opsloop.health.signals import SignalError, UnknownTenant, parse

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
GOOD = {"tenant": "acme", "kind": "usage", "value": 0.42, "at": "2026-11-22T08:00:00Z"}


def test_one_signal_or_a_list() -> None:
    [one] = parse(GOOD, now=NOW)
    assert (one.tenant, one.kind, one.value, one.at) == ("acme", "usage", 0.42, datetime(2026, 11, 22, 8, tzinfo=UTC))
    assert len(parse([GOOD, {**GOOD, "kind": "nps", "value": -30}], now=NOW)) == 2


def test_times_in_other_zones_are_stored_as_utc() -> None:
    [one] = parse({**GOOD, "at": "2026-11-22T10:00:00+02:00"}, now=NOW)
    assert one.at == datetime(2026, 11, 22, 8, tzinfo=UTC) and one.at.tzinfo == UTC


@pytest.mark.parametrize(("raw", "field", "reason"), [
    ({**GOOD, "kind": "mood"}, "kind", "unknown kind 'mood' (known: usage, nps, tickets, renewal)"),
    ([GOOD, {**GOOD, "kind": "nps", "value": 150}], "[1].value", "nps is -100..100 (got 150.0)"),
    ({**GOOD, "value": -1.5}, "value", "usage is -1..1"),
    ({**GOOD, "kind": "tickets", "value": -1}, "value", "tickets is 0..100000"),
    ({**GOOD, "value": "lots"}, "value", "valid number"),
    ({k: v for k, v in GOOD.items() if k != "at"}, "at", "Field required"),
    ({**GOOD, "at": "2026-11-22T08:00:00"}, "at", "a time with a zone"),
    ({**GOOD, "at": "2026-11-24T08:00:00Z"}, "at", "is in the future"),
    ({**GOOD, "colour": "red"}, "colour", "unknown field"),
    ([GOOD, "acme"], "[1]", "a signal is an object"),
    ([], "", "send at least one signal"),
])
def test_a_bad_signal_names_its_field(raw: object, field: str, reason: str) -> None:
    with pytest.raises(SignalError) as error:
        parse(raw, now=NOW)
    assert error.value.field == field
    assert reason in error.value.reason


def stored(services: Core) -> list[tuple[str, str, float]]:
    with services.db.transaction() as session:
        return [(r.tenant_id, r.kind, r.value) for r in session.exec(
            select(HealthSignal).order_by(col(HealthSignal.tenant_id), col(HealthSignal.kind)))]


def test_an_unknown_tenant_stores_nothing_of_the_request(services: Core) -> None:
    with pytest.raises(UnknownTenant) as error:
        services.health.ingest([GOOD, {**GOOD, "tenant": "hooli"}], source="health")
    assert error.value.field == "[1].tenant" and "unknown tenant 'hooli'" in str(error.value)
    assert stored(services) == []


def test_a_retried_signal_replaces_its_value(services: Core) -> None:
    services.health.ingest([GOOD, {**GOOD, "tenant": "globex", "kind": "tickets", "value": 4}], source="health")
    result = services.health.ingest({**GOOD, "value": -0.1}, source="health")
    assert (result.stored, result.tenants) == (1, ["acme"])
    assert stored(services) == [("acme", "usage", -0.1), ("globex", "tickets", 4.0)]


def test_ticket_volume_compares_recent_days_with_the_rest_of_the_window(services: Core) -> None:
    days = [(f"2026-11-{d:02d}T12:00:00Z", 2) for d in range(1, 11)]  # 2 a day before the last week
    days += [(f"2026-11-{d:02d}T12:00:00Z", 6) for d in range(17, 23)]  # 6 a day in the last 7 days
    services.health.ingest([{"tenant": "initech", "kind": "tickets", "value": v, "at": at} for at, v in days],
                           source="health")
    factor = services.health.view(actor="U0CSM1", account="initech").assessment.factor("tickets")
    assert factor is not None
    assert (factor.points, factor.evidence) == (12, "6.0 tickets a day over 7d (was 2.0)")  # 3 x (6 - 2)
