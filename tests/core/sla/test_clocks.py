"""Clocks against targets through the real services: warnings, breaches, pause, resume, cadence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsloop.core import Core
from opsloop.errors import InvalidInput, PermissionDenied
from opsloop.sla.attainment import attainment
from opsloop.table import Sources, assemble
from opsloop.types import Severity
from tests.core.sla.support import COMMANDER, RESPONDER, STRANGER, audit_actions, clocks, pending, thread
from tests.support import FakeClock


def sla_lines(services: Core, ref: str = "INC-1") -> list[str]:
    return [line for line in thread(services, ref) if line[:1] in ("⏳", "🚨")]


def card_fields(services: Core, ref: str = "INC-1") -> dict[str, str]:
    return dict(services.cards.of(ref).fields)


def test_a_sev1_gets_its_policy_clocks_on_the_card(services: Core) -> None:
    services.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    fields = card_fields(services)
    assert (fields["Response"], fields["Update"], fields["Resolution"]) == ("5m left", "30m left", "1h left")
    assert {c.target: c.target_seconds for c in clocks(services).values()} == {
        "response": 300, "update": 1800, "resolution": 3600}


def test_an_item_no_policy_matches_has_no_clocks(services: Core) -> None:
    services.workitems.declare(actor=COMMANDER, title="minor", severity=Severity.SEV3)
    assert clocks(services) == {}
    assert "Response" not in card_fields(services)


def test_warning_then_breach_in_order_each_once(services: Core, clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    services.sweeper.sweep()
    assert sla_lines(services) == []
    clock.advance(minutes=3, seconds=44)
    services.sweeper.sweep()
    assert sla_lines(services) == []
    clock.advance(seconds=1)  # 75% of 5m
    services.sweeper.sweep()
    assert sla_lines(services) == ["⏳ INC-1: 1m15s left for the response target (5m; 75% used)"]
    clock.advance(seconds=75)
    services.sweeper.sweep()
    services.sweeper.sweep()
    assert sla_lines(services) == ["⏳ INC-1: 1m15s left for the response target (5m; 75% used)",
                                   "🚨 INC-1 missed its response target (5m)"]
    assert card_fields(services)["Response"] == "breached 0s ago"
    clock.advance(minutes=2)
    assert card_fields(services)["Response"] == "breached 2m ago"
    assert audit_actions(services, "sla.") == ["sla.started", "sla.warning", "sla.breached"]


def test_timers_due_together_fire_warning_first(services: Core, clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    clock.advance(minutes=4, seconds=59)
    services.sweeper.sweep()
    clock.advance(seconds=1)
    services.sweeper.sweep()
    assert [line[:1] for line in sla_lines(services)] == ["⏳", "🚨"]


def test_acknowledging_meets_the_response_clock_and_stops_the_chain(services: Core,
                                                                     clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    services.sweeper.sweep()  # pages level 1
    assert len(pending(services, "page")) == 1
    clock.advance(minutes=2)
    services.workitems.act(actor=RESPONDER, ref="INC-1", action="acknowledge")
    response = clocks(services)["response"]
    assert (response.state, response.used_seconds, response.settled_at) == ("met", 120.0, clock.now())
    assert pending(services, "page") == []
    assert [t.kind for t in pending(services)] == ["warn", "breach", "warn", "breach"]  # update, resolution
    clock.advance(hours=2)
    services.sweeper.sweep()
    assert sum("Paged" in line for line in thread(services, "INC-1")) == 1  # none after the ack
    assert "escalation.stopped" in audit_actions(services, "escalation.")
    assert card_fields(services)["Response"] == "met in 2m"


def test_a_late_acknowledgement_is_a_breach_even_before_the_sweep(services: Core,
                                                                  clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    clock.advance(minutes=7)  # no sweep ran: the breach timer is still pending
    services.workitems.act(actor=RESPONDER, ref="INC-1", action="acknowledge")
    response = clocks(services)["response"]
    assert response.state == "breached"
    assert response.settled_at == response.due_at
    assert card_fields(services)["Response"] == "missed by 2m"


def test_resolving_without_acknowledging_stops_response_and_resolution(services: Core,
                                                                        clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    clock.advance(minutes=1)
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="resolve")
    states = {t: c.state for t, c in clocks(services).items()}
    assert states == {"response": "met", "update": "met", "resolution": "met"}
    # Only the review's reminders run on (a resolved sev1 needs a review).
    assert {t.kind for t in pending(services)} <= {"review.remind"}


def test_pause_shifts_due_times_and_paused_time_does_not_count(services: Core,
                                                                clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    services.workitems.act(actor=RESPONDER, ref="INC-1", action="acknowledge")
    clock.advance(minutes=20)
    services.commands.handle("/incident", "pause INC-1 waiting on the customer", actor=RESPONDER)
    assert {t: c.state for t, c in clocks(services).items() if t != "response"} == {
        "update": "paused", "resolution": "paused"}
    assert pending(services) == []
    assert card_fields(services)["Resolution"] == "paused, 40m left"
    clock.advance(hours=3)
    assert services.sweeper.sweep() == 0
    resumed_at = clock.now()
    services.commands.press("clock.resume", "INC-1", actor=RESPONDER)
    resolution = clocks(services)["resolution"]
    assert resolution.due_at == resumed_at + timedelta(minutes=40)
    assert resolution.paused_seconds == 3 * 3600
    assert card_fields(services)["Resolution"] == "40m left"
    clock.advance(minutes=39)
    services.sweeper.sweep()
    assert clocks(services)["resolution"].state == "running"
    clock.advance(minutes=1)
    services.sweeper.sweep()
    assert clocks(services)["resolution"].state == "breached"
    assert audit_actions(services, "sla.p") == ["sla.paused"]
    assert "<@U0RESP2> paused the clocks of INC-1: waiting on the customer" in thread(services, "INC-1")


def test_a_warning_passed_before_a_pause_is_not_repeated(services: Core, clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    services.workitems.act(actor=RESPONDER, ref="INC-1", action="acknowledge")
    clock.advance(minutes=50)
    services.sweeper.sweep()  # the resolution warning (45m) fires
    services.sla.pause(actor=RESPONDER, ref="INC-1")
    clock.advance(minutes=30)
    services.sla.resume(actor=RESPONDER, ref="INC-1")
    resolution = clocks(services)["resolution"].id
    assert [t.kind for t in pending(services) if t.clock_id == resolution] == ["breach"]


def test_pause_and_resume_refuse_what_makes_no_sense_and_change_nothing(services: Core) -> None:
    services.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    with pytest.raises(InvalidInput, match="no paused clock"):
        services.sla.resume(actor=RESPONDER, ref="INC-1")
    with pytest.raises(PermissionDenied, match="pause"):
        services.commands.handle("/incident", "pause INC-1", actor=STRANGER)
    services.sla.pause(actor=RESPONDER, ref="INC-1")
    before = len(thread(services, "INC-1"))
    with pytest.raises(InvalidInput, match="already paused"):
        services.sla.pause(actor=RESPONDER, ref="INC-1")
    assert len(thread(services, "INC-1")) == before
    assert audit_actions(services, "sla.paused") == ["sla.paused"]


def test_an_update_meets_the_cadence_and_starts_the_next_cycle(services: Core, clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    services.workitems.act(actor=RESPONDER, ref="INC-1", action="acknowledge")
    clock.advance(minutes=25)
    reply = services.commands.handle("/incident", 'update INC-1 "failover to eu-2 started"', actor=RESPONDER)
    assert reply.text == "INC-1: update posted"
    assert thread(services, "INC-1")[-1] == "📣 Update from <@U0RESP2> on INC-1: failover to eu-2 started"
    assert card_fields(services)["Update"] == "30m left"
    clock.advance(minutes=30)
    services.sweeper.sweep()
    assert "🚨 INC-1: no update for 30m (the update target)" in thread(services, "INC-1")
    with services.db.transaction() as s:
        outcome = attainment(s, since=clock.now() - timedelta(days=1), until=clock.now() + timedelta(1))
    assert outcome.targets["update"].met == 2  # the acknowledgement and the update
    assert outcome.targets["update"].breached == 1
    assert outcome.targets["response"].ratio == 1.0
    assert outcome.mtta == timedelta(0)
    assert [(b.ref, b.target) for b in outcome.breaches] == [("INC-1", "update")]


def test_reopening_starts_fresh_clocks_and_a_new_chain(services: Core, clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="resolve")
    clock.advance(minutes=10)
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="reopen")
    assert {t: c.state for t, c in clocks(services).items()} == {
        "response": "running", "update": "running", "resolution": "running"}
    assert len(pending(services, "page")) == 1
    clock.advance(minutes=5)
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="resolve")
    with services.db.transaction() as s:
        outcome = attainment(s, since=clock.now() - timedelta(1), until=clock.now() + timedelta(1))
    # MTTR runs to the latest resolution; each cycle's clocks count in attainment
    assert outcome.mttr == timedelta(minutes=15) and outcome.resolved == 1
    assert outcome.targets["resolution"].met == 2


def test_business_hours_escalation_counts_only_working_time(services: Core, clock: FakeClock) -> None:
    clock.current = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)  # Friday 16:30 in Berlin
    services.workitems.open_escalation(actor=STRANGER, title="exports fail", tenants=["acme", "initech"])
    response = clocks(services)["response"]
    assert response.calendar == "business"  # acme is enterprise: the first matching policy
    assert response.due_at == datetime(2026, 11, 30, 8, 30, tzinfo=UTC)  # Monday 09:30 Berlin
    clock.advance(hours=1)
    assert card_fields(services, "ESC-1")["Response"] == "30m left (outside business hours)"


def test_overdue_timers_fire_on_the_first_sweep_after_a_restart(sources: Sources, clock: FakeClock) -> None:
    first = assemble(sources, clock=clock)
    first.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    first.db.dispose()  # the bot goes down before any sweep
    clock.advance(minutes=20)
    second = assemble(sources, clock=clock)
    try:
        assert second.sweeper.sweep() > 0
        lines = sla_lines(second)
        # the response warning came due while down: the breach says it all
        assert lines == ["🚨 INC-1 missed its response target (5m)"]
        assert clocks(second)["response"].state == "breached"
        assert second.sweeper.sweep() == 0
    finally:
        second.db.dispose()
