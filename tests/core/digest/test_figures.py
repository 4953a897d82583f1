"""Each digest figure on the hand-built week of tests/core/digest/dataset.py, against answers worked by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from opsloop.authz import Authorizer
from opsloop.db import Database
from opsloop.digest.control import Point, individuals
from opsloop.digest.figures import DAY, WEEK, Speed
from opsloop.digest.service import Digest, Digests
from opsloop.errors import InvalidInput
from opsloop.policy_loader import load_policy
from opsloop.present import digest as render
from opsloop.sla.attainment import Outcomes
from tests.core.digest.dataset import seed
from tests.support import ROOT, FakeClock

H = 3600.0


def digests(db: Database, clock: FakeClock) -> Digests:
    policy = load_policy(ROOT / "opsloop.yml")
    return Digests(db, policy, clock, Authorizer(policy, db, clock), render.message)


def test_every_figure_of_the_hand_built_week(db: Database, clock: FakeClock) -> None:
    """One build, every figure (a PostgreSQL reset per test costs a second; the checks are grouped)."""
    seed(db)
    built = digests(db, clock).build()
    check_the_reported_day_is_yesterday_in_the_policys_time_zone(built)
    check_opened_and_resolved_by_kind_and_severity(built)
    check_mtta_and_mttr_against_the_mean_sla_target_of_the_same_items(built)
    check_sla_attainment_per_target(built)
    check_breaches_with_their_tenants_and_arr(built)
    check_open_escalations_and_exceptions_oldest_first(built)
    check_at_risk_accounts_by_their_newest_score(built)
    check_open_feedback_loops_and_remediation(built)
    check_control_limits_from_the_trailing_weeks(built)


def check_the_reported_day_is_yesterday_in_the_policys_time_zone(built: Digest) -> None:
    assert built.day == date(2026, 11, 22)
    assert built.first_day == date(2026, 10, 19)  # four trailing weeks and this one


def check_opened_and_resolved_by_kind_and_severity(built: Digest) -> None:
    f = built.figures
    assert f.opened[DAY] == {("incident", "sev1"): 1, ("incident", "sev2"): 1}
    assert f.opened[WEEK] == {("incident", "sev1"): 1, ("incident", "sev2"): 2, ("escalation", "sev3"): 1,
                              ("exception", "sev4"): 1}
    assert f.resolved[DAY] == {("incident", "sev1"): 1, ("incident", "sev2"): 1}
    assert f.resolved[WEEK] == {("incident", "sev1"): 1, ("incident", "sev2"): 2}


def check_mtta_and_mttr_against_the_mean_sla_target_of_the_same_items(built: Digest) -> None:
    f = built.figures
    # day: INC-1 acked in 4m, INC-2 in 10m (targets 5m, 15m); ESC-1 after 47h (no clock)
    assert f.mtta[DAY]["incident"] == Speed(2, pytest.approx(420.0), pytest.approx(600.0))  # type: ignore[arg-type]
    assert f.mtta[DAY]["escalation"] == Speed(1, pytest.approx(47 * H), None)  # type: ignore[arg-type]
    # week adds INC-3: acked in 20m (target 15m)
    assert f.mtta[WEEK]["incident"] == Speed(3, pytest.approx(680.0), pytest.approx(700.0))  # type: ignore[arg-type]
    # resolutions: 1h and 2h on the day (targets 1h, 2h), 3h earlier in the week (target 2h)
    assert f.mttr[DAY]["incident"] == Speed(2, pytest.approx(1.5 * H), pytest.approx(1.5 * H))  # type: ignore[arg-type]
    assert f.mttr[WEEK]["incident"] == Speed(3, pytest.approx(2 * H), pytest.approx(6000.0))  # type: ignore[arg-type]
    assert "exception" not in f.mttr[WEEK]


def check_sla_attainment_per_target(built: Digest) -> None:
    f = built.figures
    assert f.attainment[DAY] == {"response": Outcomes(2, 0), "resolution": Outcomes(1, 1)}
    assert f.attainment[WEEK] == {"response": Outcomes(2, 1), "resolution": Outcomes(1, 2)}
    assert f.attainment[WEEK]["resolution"].ratio == pytest.approx(1 / 3)


def check_breaches_with_their_tenants_and_arr(built: Digest) -> None:
    f = built.figures
    assert f.breach_count == 1
    [breach] = f.breaches
    assert (breach.ref, breach.target, breach.severity) == ("INC-1", "resolution", "sev1")
    assert [(t.id, t.arr) for t in breach.tenants] == [("acme", 100_000)]
    assert f.breach_arr == 100_000


def check_open_escalations_and_exceptions_oldest_first(built: Digest) -> None:
    f = built.figures
    assert f.open_counts == {"escalation": 1, "exception": 1}
    assert [i.ref for i in f.oldest["escalation"]] == ["ESC-1"]
    assert (built.built_at - f.oldest["escalation"][0].created_at).total_seconds() == 3 * 24 * H


def check_at_risk_accounts_by_their_newest_score(built: Digest) -> None:
    f = built.figures
    # acme turned at-risk, initech is at-risk; globex recovered (its older at-risk score must not count)
    assert (f.at_risk_count, f.at_risk_arr) == (2, 130_000)
    assert [(a.id, a.arr, a.renewal, a.score) for a in f.at_risk] == [
        ("acme", 100_000, date(2026, 12, 1), 35), ("initech", 30_000, date(2027, 3, 1), 41)]
    # their last 90 days against the enterprise contract (99.99%): acme had a sev1 for 1 h and a sev2
    # (30%) for 2 h, 96 min of downtime; initech only an escalation
    assert [a.availability.brief() if a.availability else None for a in f.at_risk] == [
        "availability 99.925% (90d; contract 99.99%: missed)", "availability 100.000% (90d; contract 99.99%: met)"]
    assert f.at_risk[0].availability is not None and f.at_risk[0].availability.downtime.total_seconds() == 96 * 60
    assert "score 35 · availability 99.925% (90d; contract 99.99%: missed)" in render.text(built)


def check_open_feedback_loops_and_remediation(built: Digest) -> None:
    f = built.figures
    assert (f.loops_open, f.loops_items, f.loops_resolved) == (2, 2, 1)
    assert f.remediation[DAY] == {"succeeded": 1}
    assert f.remediation[WEEK] == {"succeeded": 1, "failed": 1}
    assert f.awaiting_approval == 1


def check_control_limits_from_the_trailing_weeks(built: Digest) -> None:
    c = built.control
    # trailing daily MTTRs 2h, 1h, 3h, 2h: mean 2h; moving ranges 1h, 2h, 1h: MR̄ 4/3 h
    assert [p.value / H for p in c.trailing] == pytest.approx([2, 1, 3, 2])
    assert c.centre == pytest.approx(2 * H)
    assert c.mr_bar == pytest.approx(4 / 3 * H)
    assert c.upper == pytest.approx(2 * H + 2.66 * 4 / 3 * H)  # 5h 32m 48s
    assert c.lower == 0.0  # 2h - 3.55h, floored: no negative resolution times
    # this week: Wed 18 Nov 3h, Sun 22 Nov mean(1h, 2h)
    assert [(p.day.day, p.value / H, p.count) for p in c.current] == [(18, pytest.approx(3), 1),
                                                                       (22, pytest.approx(1.5), 2)]
    assert c.in_control is True
    # per severity, for the chart's panels: the same days split by severity
    assert {sev: [(p.day.day, p.value / H) for p in points] for sev, points in built.by_severity.items()} == {
        "sev1": [(22, pytest.approx(1))], "sev2": [(18, pytest.approx(3)), (22, pytest.approx(2))],
        "sev3": [(2, pytest.approx(2)), (3, pytest.approx(1)), (5, pytest.approx(3)), (10, pytest.approx(2))]}
    # one target per severity from the SLA policies (sev3 and sev4 incidents have none), never a blend
    assert built.targets == {"sev1": H, "sev2": 4 * H}


def test_a_slow_day_this_week_is_out_of_control(db: Database, clock: FakeClock) -> None:
    seed(db, out_of_control=True)
    c = digests(db, clock).build().control
    assert [(p.day.day, p.value / H) for p in c.beyond] == [(20, pytest.approx(6))]
    assert c.in_control is False


def test_individuals_chart_by_hand() -> None:
    days = [date(2026, 11, d) for d in range(1, 9)]
    trailing = [Point(d, v, 1) for d, v in zip(days[:5], [10, 14, 12, 16, 8], strict=True)]
    current = [Point(days[5], 30, 1), Point(days[6], 12, 1), Point(days[7], 0.01, 1)]
    c = individuals(trailing, current)
    # mean 12; moving ranges 4, 2, 4, 8 -> MR̄ 4.5; limits 12 ± 11.97
    assert (c.centre, c.mr_bar) == (12, 4.5)
    assert c.upper == pytest.approx(23.97)
    assert c.lower == pytest.approx(0.03)
    assert [p.value for p in c.beyond] == [30, 0.01]  # above and below
    assert individuals(trailing[:1], current).judged is False  # one point has no moving range


def test_no_limits_from_fewer_than_four_weeks_of_history(db: Database, clock: FakeClock) -> None:
    """A new install: the record starts 10 days ago, so the trailing weeks are empty, not calm."""
    seed(db, young=True)
    built = digests(db, clock).build()
    c = built.control
    assert (c.unjudged, c.history_from, c.judged) == ("history", date(2026, 11, 13), False)
    assert c.centre is None and c.beyond == []
    text = render.text(built)
    assert "fewer than four weeks of history to judge resolution times" in text.splitlines()[0]
    assert ("Fewer than four weeks of history (the record starts 2026-11-13): no control limits yet, rather "
            "than limits from nothing; this week's incident MTTR 2h 00m (3 resolved on 2 day(s))") in text
    assert "limits 0s" not in text and "centre" not in text


def test_a_past_day_as_it_stood_at_its_end(db: Database, clock: FakeClock) -> None:
    seed(db)
    built = digests(db, clock).build(day=date(2026, 11, 18))
    f = built.figures
    assert (built.day, built.first_day) == (date(2026, 11, 18), date(2026, 10, 15))
    assert built.as_of == datetime(2026, 11, 18, 23, 0, tzinfo=UTC)  # midnight in Berlin
    assert f.opened[DAY] == {("incident", "sev2"): 1} and f.resolved[DAY] == {("incident", "sev2"): 1}
    assert f.attainment[DAY] == {"response": Outcomes(0, 1), "resolution": Outcomes(0, 1)}
    # ESC-1 (20 Nov), EXC-1 (21 Nov) and every health score came later: nothing open, nobody at risk
    assert f.open_counts == {"escalation": 0, "exception": 0} and f.at_risk_count == 0
    assert (f.loops_open, f.remediation[DAY]) == (0, {"failed": 1})
    assert [(p.day.day, p.value / H) for p in built.control.current] == [(18, pytest.approx(3))]
    assert "as of the end of 2026-11-18" in render.text(built)


def test_the_open_items_of_a_past_day_are_read_from_their_transitions(db: Database, clock: FakeClock) -> None:
    seed(db)
    f = digests(db, clock).build(day=date(2026, 11, 21)).figures
    # ESC-1 was opened on the 20th and acknowledged only on the 22nd; EXC-1 was requested on the 21st
    assert f.open_counts == {"escalation": 1, "exception": 1}
    assert [(i.ref, i.state) for i in f.oldest["escalation"]] == [("ESC-1", "triggered")]
    assert [(a.id, a.score) for a in f.at_risk] == [("globex", 30), ("initech", 41)]  # acme turned later


def test_only_days_that_are_over_have_a_digest(db: Database, clock: FakeClock) -> None:
    with pytest.raises(InvalidInput, match="2026-11-23 is not over yet: the latest day with a digest is 2026-11-22"):
        digests(db, clock).build(day=date(2026, 11, 23))
