"""The report on generated histories with known answers, and calibration against known weights."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from sqlmodel import select

from opsloop.core import Core
from opsloop.health.calibrate import NotEnoughData
from opsloop.health.models import HealthDaily
from opsloop.health.present import report_text
from opsloop.health.report import HealthReport
from tests.core.health.history import TODAY, History, separated
from tests.support import FakeClock

LEADER = "U0CEO"


def report(services: Core) -> HealthReport:
    return services.health.report(actor=LEADER)


@pytest.fixture
def today(clock: FakeClock) -> None:
    clock.current = clock.current.replace(year=TODAY.year, month=TODAY.month, day=TODAY.day)


def test_a_score_that_separates_perfectly_has_an_auc_of_1(services: Core, today: None) -> None:
    separated(120, perfect=True).write(services.db)
    found = report(services)
    assert [(s.days, s.n, s.auc) for s in found.separation] == [(30, 120, 1.0), (60, 120, 1.0), (90, 120, 1.0)]
    lost = found.separation[0].lost
    assert found.bands["at-risk"][30].n == lost and found.bands["at-risk"][30].rate == 1.0
    assert found.bands["healthy"][90].rate == 0.0
    assert "• 30 days before: AUC 1.00 over 120 renewals" in report_text(found)


def test_a_random_score_is_about_a_coin(services: Core, today: None) -> None:
    separated(600, perfect=False, seed=5).write(services.db)
    for s in report(services).separation:
        assert s.auc is not None and abs(s.auc - 0.5) < 0.08, s


def test_a_score_older_than_the_tolerance_does_not_stand_for_the_day(services: Core, today: None) -> None:
    history = History()
    history.account("t1")
    history.renewal("t1", TODAY - timedelta(days=5), "churned", scores={36: 20})  # 6 days older than day -30: used
    history.account("t2")
    history.renewal("t2", TODAY - timedelta(days=5), "renewed", scores={45: 90})  # 15 days off: not
    history.write(services.db)
    found = report(services)
    assert found.separation[0].n == 1  # 30 days: t1's (within 7 days of day -30); not t2's
    assert found.separation[0].auc is None  # below health.min_outcomes
    assert "30 days before: not enough data (1 outcomes with a score, 1 lost; needs 10" in report_text(found)
    assert "Below 10 outcomes (health.min_outcomes) a figure says not enough data; 2 renewal" in report_text(found)


def test_intervention_success_per_playbook(services: Core, today: None) -> None:
    history = History()
    rng = random.Random(3)
    for i in range(24):  # deep-dive: 12 taken (as plays), 10 kept; 12 dismissed or snoozed, 3 kept
        tenant = history.account(f"d{i:02d}")
        renewal = TODAY - timedelta(days=rng.randint(10, 200))
        taken = i < 12
        kept = i < 10 or 12 <= i < 15
        if taken:
            history.play(tenant, renewal - timedelta(days=60), "technical-deep-dive", "saved" if kept else "churned")
        else:
            history.prompt(tenant, renewal - timedelta(days=60), "dismissed" if i % 2 else "snoozed",
                           "technical-deep-dive")
        history.renewal(tenant, renewal, "renewed" if kept else "churned")
    for i in range(2):  # credit: too few to say
        tenant = history.account(f"c{i}")
        history.prompt(tenant, TODAY - timedelta(days=90), "taken", "credit")
        history.renewal(tenant, TODAY - timedelta(days=30), "renewed")
    tenant = history.account("old")  # a prompt more than a year before its renewal is not attributed
    history.prompt(tenant, TODAY - timedelta(days=500), "taken", "credit")
    history.renewal(tenant, TODAY - timedelta(days=10), "churned")
    history.write(services.db)
    books = {p.playbook: p for p in report(services).playbooks}
    deep = books["technical-deep-dive"]
    assert (deep.taken.n, deep.taken.hits, deep.untaken.n, deep.untaken.hits) == (12, 10, 12, 3)
    assert deep.closed == {"saved": 10, "churned": 2}
    assert (books["credit"].taken.n, books["credit"].taken.hits, books["credit"].untaken.n) == (2, 2, 0)
    text = report_text(report(services))
    assert ("• technical-deep-dive: taken 83% kept (10/12) · snoozed or dismissed 25% kept (3/12) · "
            "plays: 10 saved · 2 churned") in text
    assert "• credit: taken not enough data (2) · snoozed or dismissed not enough data (0) · plays: none closed" \
        in text


def _logistic_history(n: int, seed: int) -> tuple[History, dict[str, float]]:
    """Units drawn at random; loss drawn from a logistic model with known per-unit effects."""
    truth = {"usage": 4.0, "nps": 2.0, "incidents.sev1": 1.0, "sla_breaches": 0.4, "tickets": -0.6}
    rng = random.Random(seed)
    history = History()
    for i in range(n):
        tenant = history.account(f"k{i:04d}")
        units = {"incidents.sev1": float(min(4, int(rng.expovariate(1.5)))),
                 "sla_breaches": float(min(6, int(rng.expovariate(0.7)))),
                 "usage": rng.random() if rng.random() < 0.6 else 0.0, "nps": rng.random(),
                 "tickets": rng.random() * 3}
        logit = -3.2 + sum(truth[u] * v for u, v in units.items())
        lost = rng.random() < 1 / (1 + math.exp(-logit))
        history.renewal(tenant, TODAY - timedelta(days=rng.randint(1, 300)), "churned" if lost else "renewed",
                        scores={90: 50}, units={90: units})
    return history, truth


def test_calibrate_recovers_the_sign_and_order_of_known_weights(services: Core, today: None) -> None:
    history, truth = _logistic_history(2000, seed=11)
    history.write(services.db)
    found = services.health.calibrate(days=90)
    proposed = {t.unit: t.proposed for t in found.terms}
    positive = sorted((u for u in truth if truth[u] > 0), key=lambda u: -truth[u])
    assert sorted(positive, key=lambda u: -proposed[u]) == positive  # the same order
    assert all(proposed[u] > 0 for u in positive)
    assert proposed["tickets"] == 0  # it goes with renewal in the data: proposed at 0
    never = {t.unit: t for t in found.terms}["incidents.sev4"]  # never varied: the current weight kept
    assert (never.proposed, never.note) == (1, "never varied in these outcomes: kept")
    assert found.auc_proposed is not None and found.auc_current is not None
    assert found.auc_proposed > found.auc_current
    assert found.held_out == 600 and found.fitted == 1400
    # proposed, never imposed: the policy's weights are what they were
    assert services.health.config.weights.usage == 30


def test_calibrate_needs_outcomes_of_both_kinds(services: Core, today: None) -> None:
    separated(15, perfect=True).write(services.db)
    with pytest.raises(NotEnoughData, match="calibration needs at least 10 of each"):
        services.health.calibrate(days=90)
    with services.db.transaction() as session:
        assert len(session.exec(select(HealthDaily)).all()) == 45  # nothing written either
