"""Availability over 90 days from the incidents that touched a tenant, as Statuspage counts it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from opsloop.core import Core
from opsloop.status.availability import Span, availability, shown, weighted_downtime
from opsloop.status.config import StatusPolicy
from opsloop.types import Severity
from tests.support import FakeClock

T0 = datetime(2026, 11, 1, tzinfo=UTC)
R = "U0RESP1"


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def test_overlapping_incidents_count_once_at_the_heaviest_weight() -> None:
    spans = [Span(T0, T0 + minutes(60), 0.3),            # a partial outage for an hour
             Span(T0 + minutes(10), T0 + minutes(20), 1.0),  # a full outage inside it
             Span(T0 + minutes(15), T0 + minutes(25), 1.0),  # and another overlapping that one
             Span(T0 + minutes(100), T0 + minutes(200), 0.0)]  # degraded: no downtime
    # 10 min at 0.3, 15 min at 1.0, 35 min at 0.3
    assert weighted_downtime(spans) == minutes(10 * 0.3 + 15 + 35 * 0.3)
    assert weighted_downtime([]) == timedelta(0)


def test_three_decimals_are_cut_never_rounded_up_to_a_clean_record() -> None:
    assert shown(99.99999) == "99.999%"
    assert shown(100.0) == "100.000%"
    assert shown(99.9876) == "99.987%"


@pytest.mark.parametrize(("written", "percent"), [("99.99%", 99.99), (99.9, 99.9), ("99.5 %", 99.5), (100, 100.0)])
def test_contracts_are_percentages(written: object, percent: float) -> None:
    assert StatusPolicy.model_validate({"contract": {"enterprise": written}}).promised("enterprise") == percent


@pytest.mark.parametrize("bad", ["0.999", 0.999, "99,9%", "high", True, 101, "-5%"])
def test_anything_else_is_refused_saying_what_to_write(bad: object) -> None:
    with pytest.raises(ValidationError, match=r"percentage|availability target"):
        StatusPolicy.model_validate({"contract": {"enterprise": bad}})


def test_a_tenants_incidents_against_its_contract(services: Core, clock: FakeClock) -> None:
    clock.current = T0
    wi = services.workitems
    wi.declare(actor=R, title="Checkout down", severity=Severity.SEV1, tenants=["acme", "globex"])
    clock.advance(minutes=6)
    wi.act(actor=R, ref="INC-1", action="mitigate")  # impact ends at mitigation: 6 min
    clock.advance(minutes=30)
    wi.act(actor=R, ref="INC-1", action="resolve")
    wi.declare(actor=R, title="Slow search", severity=Severity.SEV2, tenants=["acme"])
    clock.advance(minutes=40)
    wi.act(actor=R, ref="INC-2", action="resolve")  # 40 min at 30%: 12 min
    wi.declare(actor=R, title="Typo on a page", severity=Severity.SEV4, tenants=["acme"])  # open, weightless
    clock.advance(days=1)
    with services.db.snapshot() as s:
        found = availability(s, ["acme", "globex", "initech", "nobody"], until=clock.now(),
                             policy=services.policy.status)
    assert set(found) == {"acme", "globex", "initech"}
    acme, globex, initech = found["acme"], found["globex"], found["initech"]
    assert acme.downtime == minutes(18) and acme.incidents == 3
    assert acme.contract == 99.99 and acme.allowed == timedelta(seconds=778)  # 90 days at 99.99%
    assert acme.met is False
    assert acme.summary() == "99.986% over 90 days · contract 99.99%: missed (18m of 12m58s allowed)"
    assert acme.brief() == "availability 99.986% (90d; contract 99.99%: missed)"
    assert globex.downtime == minutes(6) and globex.met is True and globex.contract == 99.9
    assert initech.downtime == timedelta(0) and initech.percent == 100.0 and initech.met is True
    # ninety days on, the window has moved past all of it
    clock.advance(days=90)
    with services.db.snapshot() as s:
        later = availability(s, ["acme"], until=clock.now(), policy=services.policy.status)["acme"]
    assert later.downtime == timedelta(0) and later.incidents == 1  # only the open sev4 still touches it


def test_an_open_outage_counts_until_now_and_a_past_day_is_counted_as_it_stood(
        services: Core, clock: FakeClock) -> None:
    clock.current = T0
    services.workitems.declare(actor=R, title="Down", severity=Severity.SEV1, tenants=["initech"])
    clock.advance(hours=2)
    with services.db.snapshot() as s:
        now = availability(s, ["initech"], until=clock.now(), policy=services.policy.status)["initech"]
        then = availability(s, ["initech"], until=T0 + minutes(30), policy=services.policy.status)["initech"]
    assert now.downtime == timedelta(hours=2) and then.downtime == minutes(30)


def test_a_tier_without_a_contract_says_so(services: Core) -> None:
    policy = StatusPolicy.model_validate({"contract": {"enterprise": "99.99%"}})
    with services.db.snapshot() as s:
        found = availability(s, ["initech"], until=T0, policy=policy)["initech"]
    assert found.contract is None and found.met is None and found.allowed is None
    assert found.summary() == "100.000% over 90 days · no contract for its tier (status.contract)"
