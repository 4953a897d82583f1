"""Score arithmetic, bands per tier and the renewal rule, against hand-computed expectations."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from opsloop.errors import ConfigError
from opsloop.health.config import HealthPolicy
from opsloop.health.score import (
    AT_RISK,
    HEALTHY,
    WATCH,
    AccountFacts,
    Inputs,
    ItemRef,
    assess,
    band_of,
    score_of,
    weight_of,
)
from opsloop.policy_loader import load_policy

TODAY = date(2026, 11, 23)
DEFAULTS = HealthPolicy()


def account(tier: str = "enterprise", renewal_in: int | None = None) -> AccountFacts:
    renewal = None if renewal_in is None else TODAY + timedelta(days=renewal_in)
    return AccountFacts("acme", "Acme Corp", tier, 480_000, renewal, "U0CSM1")


def test_every_factor_takes_its_weighted_points() -> None:
    inputs = Inputs(incidents={"sev1": 1, "sev2": 1}, incident_refs=[ItemRef("INC-3", "sev1", "EU db down")],
                    breaches=1, breach_refs=["INC-3 response"], open_escalations=1, escalation_refs=["ESC-1"],
                    open_exceptions=2, exception_refs=["EXC-1", "EXC-2"],
                    usage=-0.25, nps=20, tickets_recent=5.0, tickets_before=3.0)
    result = assess(inputs, account(renewal_in=300), DEFAULTS, today=TODAY)
    points = {f.name: f.points for f in result.factors}
    # 25+12 | 8 | 10 | 2x3 | 30x0.25 | 20x(100-20)/200 | 3x(5-3)
    assert points == {"incidents": 37, "sla_breaches": 8, "open_escalations": 10, "open_exceptions": 6,
                      "usage": 7.5, "nps": 8, "tickets": 6}
    assert result.score == 18  # 100 - 82.5 = 17.5, rounded half up
    assert result.band == AT_RISK
    assert result.reasons() == ["incidents", "open_escalations", "sla_breaches", "nps", "usage",
                                "open_exceptions", "tickets"]
    assert "1 sev1, 1 sev2 in 30d: INC-3 (sev1) EU db down" in result.factor("incidents").evidence
    assert result.factor("tickets").evidence == "5.0 tickets a day over 7d (was 3.0)"


def test_nothing_wrong_is_100_and_good_signals_take_nothing() -> None:
    result = assess(Inputs(usage=0.8, nps=100, tickets_recent=2.0, tickets_before=4.0), account(), DEFAULTS,
                    today=TODAY)
    assert (result.score, result.band, result.reasons()) == (100, HEALTHY, [])


def test_ticket_volume_without_earlier_data_is_no_rise() -> None:
    result = assess(Inputs(tickets_recent=40.0), account(), DEFAULTS, today=TODAY)
    assert result.factor("tickets").points == 0 and result.score == 100


def test_the_score_stays_within_0_and_100() -> None:
    result = assess(Inputs(incidents={"sev1": 9}), account(), DEFAULTS, today=TODAY)
    assert result.score == 0


def test_rounding_is_half_up() -> None:
    assert assess(Inputs(usage=-0.15), account(), DEFAULTS, today=TODAY).score == 96  # 95.5
    assert assess(Inputs(usage=-0.05), account(), DEFAULTS, today=TODAY).score == 99  # 98.5


# 75 = one sev1 (25); 60 = a sev1 and usage -0.5 (25 + 15); 50 = two sev1s
# enterprise 85/65, mid-market 75/55, smb 65/45
@pytest.mark.parametrize(("inputs", "tier", "expected"), [
    (Inputs(incidents={"sev1": 1}), "enterprise", (75, WATCH)),
    (Inputs(incidents={"sev1": 1}), "mid-market", (75, HEALTHY)),
    (Inputs(incidents={"sev1": 1}, usage=-0.5), "enterprise", (60, AT_RISK)),
    (Inputs(incidents={"sev1": 1}, usage=-0.5), "mid-market", (60, WATCH)),
    (Inputs(incidents={"sev1": 1}, usage=-0.5), "smb", (60, WATCH)),
    (Inputs(incidents={"sev1": 2}), "mid-market", (50, AT_RISK)),
    (Inputs(incidents={"sev1": 2}), "smb", (50, WATCH)),
])
def test_one_score_is_a_different_band_per_tier(inputs: Inputs, tier: str, expected: tuple[int, str]) -> None:
    result = assess(inputs, account(tier), DEFAULTS, today=TODAY)
    assert (result.score, result.band) == expected


@pytest.mark.parametrize(("score", "band"), [(85, HEALTHY), (84, WATCH), (65, WATCH), (64, AT_RISK)])
def test_band_edges_enterprise(score: int, band: str) -> None:
    assert band_of(score, "enterprise", DEFAULTS) == band


def test_the_policy_sets_weights_and_bands() -> None:
    config = HealthPolicy.model_validate({"weights": {"incidents": {"sev1": 40}, "nps": 0},
                                          "bands": {"smb": {"watch": 90, "at_risk": 70}}})
    result = assess(Inputs(incidents={"sev1": 1}, nps=-100), account("smb"), config, today=TODAY)
    assert (result.score, result.band) == (60, AT_RISK)
    assert config.band("enterprise").watch == 85  # tiers left out keep their defaults


def test_renewal_rule_makes_a_sev1_near_renewal_at_risk_whatever_the_score() -> None:
    inputs = Inputs(incidents={"sev1": 1}, incident_refs=[ItemRef("INC-7", "sev1", "down")])
    near = assess(inputs, account(renewal_in=60), DEFAULTS, today=TODAY)
    assert (near.score, near.band) == (75, AT_RISK)
    assert near.reasons()[0] == "renewal"
    assert near.rules[0].evidence == ("sev1 INC-7 touched this enterprise account 60 days before its renewal "
                                      "(2027-01-22)")
    assert assess(inputs, account(renewal_in=120), DEFAULTS, today=TODAY).band == WATCH
    assert assess(inputs, account(renewal_in=-3), DEFAULTS, today=TODAY).rules == []
    assert assess(inputs, account("smb", renewal_in=60), DEFAULTS, today=TODAY).band == HEALTHY
    sev2 = Inputs(incidents={"sev2": 1})
    assert assess(sev2, account(renewal_in=60), DEFAULTS, today=TODAY).rules == []


def test_units_times_weights_are_the_points_taken_off() -> None:
    inputs = Inputs(incidents={"sev1": 1, "sev3": 2}, breaches=2, open_escalations=1, open_exceptions=1,
                    usage=-0.4, nps=-20, tickets_recent=6.0, tickets_before=2.5)
    result = assess(inputs, account(), DEFAULTS, today=TODAY)
    assert result.units == {"incidents.sev1": 1, "incidents.sev2": 0, "incidents.sev3": 2, "incidents.sev4": 0,
                            "sla_breaches": 2, "open_escalations": 1, "open_exceptions": 1, "usage": 0.4,
                            "nps": 0.6, "tickets": 3.5}
    assert sum(f.points for f in result.factors) == pytest.approx(
        sum(weight_of(DEFAULTS.weights, u) * v for u, v in result.units.items()))
    assert score_of(result.units, DEFAULTS.weights) == result.score == 4  # 100 - 96.5, rounded half up
@pytest.mark.parametrize(("section", "problem"), [
    ({"bands": {"smb": {"watch": 40, "at_risk": 50}}}, "health.bands.smb: at_risk must be below watch"),
    ({"playbooks": {"call": {"text": "x"}}}, "playbooks are versioned files now"),
    ({"plays": {"calendar": "office"}}, "health.plays.calendar: unknown calendar 'office'"),
    ({"executive": {"score_below": 0}}, "health.executive.score_below"),
    ({"weights": {"usage": 101}}, "health.weights.usage"),
    ({"weights": {"mood": 3}}, "health.weights.mood: unknown key"),
    ({"bands": {"gold": {"watch": 80, "at_risk": 50}}}, "health.bands.gold"),
    ({"recent": "30d"}, "recent must be shorter than window"),
    ({"daily_at": 420}, "quote times of day"),
])
def test_a_bad_health_section_names_the_key(tmp_path: Path, section: dict, problem: str) -> None:
    import yaml

    path = tmp_path / "opsloop.yml"
    path.write_text(yaml.safe_dump({"channels": {"ops": "C0OPS"}, "health": section}))
    with pytest.raises(ConfigError) as error:
        load_policy(path)
    assert problem in str(error.value)


def test_the_sample_policy_has_a_valid_health_section() -> None:
    from tests.support import ROOT

    policy = load_policy(ROOT / "opsloop.yml")
    assert policy.health.plays.calendar == "business" and "business" in policy.sla.calendars
    with pytest.raises(ValidationError):
        HealthPolicy.model_validate({"snooze": "never"})
