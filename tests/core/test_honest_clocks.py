"""Honest clocks: a person who declares is responding; a machine's acknowledgement is no person's;
alerts that resolve with nobody acting are "no response", never "met" — on the card and in the digest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsloop.core import Core
from opsloop.intake.payloads import parse_v2
from opsloop.sla.attainment import attainment
from opsloop.table import Sources, assemble
from tests.core.intake.test_alert_context import crashloop
from tests.core.sla.support import COMMANDER, audit_actions, clocks, dms, pending
from tests.support import ROOT, FakeClock

Build = Callable[..., Core]


@pytest.fixture
def build(sources: Sources, clock: FakeClock, tmp_path: Path) -> Iterator[Build]:
    """The sample policy with `sla` keys set as a test says."""
    built: list[Core] = []

    def make(**sla: Any) -> Core:
        policy = yaml.safe_load((ROOT / "opsloop.yml").read_text())
        policy["accounts"] = str(ROOT / "accounts.yml")
        policy["sla"].update(sla)
        path = tmp_path / f"opsloop-{len(built)}.yml"
        path.write_text(yaml.safe_dump(policy, sort_keys=False))
        services = assemble(replace(sources, config=path), clock=clock)
        built.append(services)
        return services

    yield make
    for services in built:
        services.db.dispose()


def v2(services: Core, action: str, key: str = "k1") -> None:
    body: dict[str, Any] = {"routing_key": "rk", "event_action": action, "dedup_key": key}
    if action == "trigger":
        body["payload"] = {"summary": "Checkout 5xx above 5%", "source": "checkout-7f9", "severity": "critical"}
    services.intake.ingest([("monitors", parse_v2(body))])


def test_a_person_who_declares_a_sev1_meets_the_response_target_and_is_not_paged(
        services: Core, clock: FakeClock) -> None:
    """The issue's example: the declarer of a sev1 got "missed its response target" and was paged."""
    services.commands.handle("/incident", 'declare "EU database primary down" sev1', actor=COMMANDER)
    response = clocks(services)["response"]
    assert (response.state, response.used_seconds) == ("met", 0)
    assert pending(services, "page") == []
    clock.advance(minutes=20)
    services.sweeper.sweep()
    assert clocks(services)["response"].state == "met"
    assert COMMANDER not in dms(services) and dms(services) == []
    assert "sla.breached" not in audit_actions(services, "sla.")
    card = services.cards.of("INC-1")
    assert ("Response", "met in 0s") in card.fields
    assert clocks(services)["resolution"].state == "running"  # only the response is met


def test_with_declared_meets_response_false_the_declarer_waits_for_an_ack_as_before(
        build: Build, clock: FakeClock) -> None:
    services = build(declared_meets_response=False)
    services.commands.handle("/incident", 'declare "EU database primary down" sev1', actor=COMMANDER)
    assert clocks(services)["response"].state == "running"
    assert [t.payload["chain"] for t in pending(services, "page")] == ["sre-primary"]


def test_a_machine_ack_is_the_integrations_and_does_not_meet_the_response(services: Core,
                                                                        clock: FakeClock) -> None:
    v2(services, "trigger")
    clock.advance(minutes=1)
    v2(services, "acknowledge")
    item = services.workitems.get("INC-1").item
    assert (item.state, item.owner, item.acknowledged_at) == ("acknowledged", None, None)
    assert clocks(services)["response"].state == "running"
    clock.advance(minutes=5)
    services.sweeper.sweep()
    assert clocks(services)["response"].state == "breached"  # sev1: 5 minutes, and no person answered
    services.commands.handle("/incident", "update INC-1 \"looking at it\"", actor=COMMANDER)
    assert clocks(services)["response"].stopped_at == clock.current  # a person's first action answers it


def test_a_machine_ack_meets_the_response_when_the_policy_says_so(build: Build, clock: FakeClock) -> None:
    services = build(machine_ack_meets_response=True)
    v2(services, "trigger")
    clock.advance(minutes=2)
    v2(services, "acknowledge")
    item = services.workitems.get("INC-1").item
    assert (item.owner, item.acknowledged_at) == (None, clock.current)
    response = clocks(services)["response"]
    assert (response.state, response.used_seconds) == ("met", 120)


def test_alerts_that_resolve_with_nobody_acting_record_no_response(services: Core, clock: FakeClock) -> None:
    """The issue's example: an incident whose alerts resolved with nobody looking counted "met in 45s"."""
    services.intake.ingest([("prometheus", crashloop("checkout-7f9"))])
    clock.advance(seconds=45)
    services.intake.ingest([("prometheus", crashloop("checkout-7f9", status="resolved"))])
    item = services.workitems.get("INC-1").item
    assert item.state == "mitigated"
    response = clocks(services)["response"]
    assert (response.state, response.settled_at) == ("no_response", clock.current)
    fields = dict(services.cards.of("INC-1").fields)
    assert fields["Response"].startswith("no response")
    with services.db.transaction() as s:
        figures = attainment(s, since=clock.current - timedelta(hours=1), until=clock.current + timedelta(1))
    assert figures.targets["response"].met == 0
    assert figures.targets["response"].no_response == 1
    assert figures.targets["response"].ratio == 0
    assert figures.mtta is None and figures.acknowledged == 0  # nothing counts as a fast response


def test_an_events_v2_resolve_with_nobody_acting_is_no_response_too(services: Core, clock: FakeClock) -> None:
    v2(services, "trigger")
    v2(services, "acknowledge")
    clock.advance(seconds=30)
    v2(services, "resolve")
    assert clocks(services)["response"].state == "no_response"


def test_a_person_who_acts_before_the_alerts_resolve_met_the_response(services: Core,
                                                                     clock: FakeClock) -> None:
    services.intake.ingest([("prometheus", crashloop("checkout-7f9"))])
    clock.advance(minutes=2)
    services.commands.handle("/incident", "ack INC-1", actor=COMMANDER)
    services.intake.ingest([("prometheus", crashloop("checkout-7f9", status="resolved"))])
    response = clocks(services)["response"]
    assert (response.state, response.used_seconds) == ("met", 120)


def test_raising_a_declared_incidents_severity_keeps_its_response_met(services: Core,
                                                                     clock: FakeClock) -> None:
    services.commands.handle("/incident", 'declare "Login slow" sev3', actor=COMMANDER)
    clock.advance(minutes=30)
    services.commands.handle("/incident", "severity INC-1 sev1", actor=COMMANDER)
    now = clocks(services)
    assert now["response"].state == "met" and now["resolution"].state == "running"
    assert pending(services, "page") == []  # nobody is paged to respond to what its declarer answers
