"""Events API v2 with PagerDuty's semantics, and what an event's fields become (label_map)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.intake.models import Alert
from opsloop.intake.payloads import PayloadError, parse_v2
from opsloop.models import WorkItem
from opsloop.table import Sources, assemble
from tests.support import ROOT, FakeClock


def trigger(key: str | None = None, **payload: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"routing_key": "rk", "event_action": "trigger",
                            "payload": {"summary": "Checkout 5xx above 5%", "source": "checkout-7f9",
                                        "severity": "critical", **payload}}
    return {**body, "dedup_key": key} if key else body


def act(action: str, key: str) -> dict[str, Any]:
    return {"routing_key": "rk", "event_action": action, "dedup_key": key}


def send(services: Core, *bodies: dict[str, Any], integration: str = "monitors") -> list[Any]:
    return services.intake.ingest([(integration, parse_v2(body)) for body in bodies])


def items(services: Core) -> list[WorkItem]:
    with services.db.transaction() as s:
        return list(s.exec(select(WorkItem).order_by(col(WorkItem.id))))


@pytest.fixture
def mapped(sources: Sources, clock: FakeClock, tmp_path: Path) -> Iterator[Core]:
    """The sample policy with a second events_v2 integration that maps its own labels."""
    policy = yaml.safe_load((ROOT / "opsloop.yml").read_text())
    policy["accounts"] = str(ROOT / "accounts.yml")
    policy["integrations"].append({"name": "datadog", "kind": "events_v2", "token_env": "DD_KEY",
                                   "label_map": {"service": "component", "team": "custom_details.owner.team",
                                                 "tenant": "custom_details.customer"}})
    path = tmp_path / "opsloop.yml"
    path.write_text(yaml.safe_dump(policy))
    built = assemble(replace(sources, config=path), clock=clock)
    yield built
    built.db.dispose()


def test_a_trigger_for_an_open_key_is_deduplicated_until_it_is_resolved(services: Core) -> None:
    [first] = send(services, trigger("pay-1"))
    assert first.created == ["INC-1"] and first.dedup_key == "pay-1"
    [again] = send(services, trigger("pay-1"))
    assert again.created == [] and again.touched == ["INC-1"]
    send(services, act("acknowledge", "pay-1"))
    [while_acked] = send(services, trigger("pay-1"))
    assert while_acked.created == []  # still the same open incident
    [resolved] = send(services, act("resolve", "pay-1"))
    assert resolved.touched == ["INC-1"]
    assert [(i.ref, i.state) for i in items(services)] == [("INC-1", "resolved")]
    [reborn] = send(services, trigger("pay-1"))
    assert reborn.created == ["INC-2"]
    assert [i.state for i in items(services)] == ["resolved", "triggered"]


def test_a_machine_acknowledgement_is_recorded_but_makes_nobody_the_owner(services: Core) -> None:
    send(services, trigger("k"), act("acknowledge", "k"))
    [item] = items(services)
    assert (item.state, item.owner) == ("acknowledged", None)
    card = services.cards.of("INC-1")
    assert ("Owner", "—") in card.fields
    assert "<@system:" not in card.plain() and "system:monitors" not in card.plain()
    timeline = services.workitems.get("INC-1").timeline
    assert any(line.text.startswith("monitors acknowledged INC-1") for line in timeline)


def test_trigger_and_resolve_in_one_batch_leave_one_resolved_incident(services: Core) -> None:
    outcomes = send(services, trigger("same-batch"), act("resolve", "same-batch"))
    assert [o.created for o in outcomes] == [["INC-1"], []]
    assert [i.state for i in items(services)] == ["resolved"]
    with services.db.transaction() as s:
        assert [(a.status, a.active) for a in s.exec(select(Alert))] == [("resolved", False)]


def test_custom_details_map_to_labels_so_tenants_and_routing_work(services: Core) -> None:
    send(services, trigger("db", custom_details={"tenant": "acme", "service": "db-eu-1", "build": 42},
                           component="postgres", group="eu", **{"class": "disk"}))
    [item] = items(services)
    assert item.labels == {"source": "checkout-7f9", "severity": "critical", "component": "postgres",
                           "group": "eu", "class": "disk", "tenant": "acme", "service": "db-eu-1"}
    assert services.workitems.get("INC-1").tenants == ["acme"]
    with services.db.transaction() as s:
        [run] = services.runbooks.progress(s, item)
    assert run.runbook_id == "db-failover"  # routed on the mapped service label (db-.*)


def test_an_integrations_label_map_adds_to_and_replaces_the_defaults(mapped: Core) -> None:
    send(mapped, trigger("x", component="checkout-api",
                         custom_details={"customer": "globex", "owner": {"team": "payments"}, "tenant": "acme"}),
         integration="datadog")
    [item] = items(mapped)
    assert item.labels["service"] == "checkout-api" and item.labels["team"] == "payments"
    assert item.labels["tenant"] == "globex"  # the integration's own path replaced custom_details.tenant
    assert mapped.workitems.get("INC-1").tenants == ["globex"]


def test_links_and_images_are_kept_and_unsafe_addresses_dropped(services: Core) -> None:
    body = {**trigger("l"), "client": "Grafana", "client_url": "https://grafana.example/alerting/1",
            "links": [{"href": "https://grafana.example/d/abc", "text": "Dashboard"},
                      {"href": "javascript:alert(1)", "text": "evil"},
                      {"href": "https://x.example/a|b>", "text": "breaks markup"}],
            "images": [{"src": "https://grafana.example/render/1.png", "alt": "p99 latency"}]}
    send(services, body)
    card = services.cards.of("INC-1")
    assert card.body is not None
    assert "<https://grafana.example/d/abc|Dashboard>" in card.body
    assert "<https://grafana.example/alerting/1|View in Grafana>" in card.body
    assert "<https://grafana.example/render/1.png|🖼 p99 latency>" in card.body
    assert "javascript" not in card.body and "evil" not in card.body and "breaks markup" not in card.body


@pytest.mark.parametrize(("body", "fragment"), [
    ({**trigger(), "links": "https://x"}, "links: Input should be a valid list"),
    ({**trigger(), "payload": {"summary": "s", "source": "x", "severity": "fatal"}}, "payload.severity"),
    ({**trigger(), "payload": {"summary": "s", "source": "x", "severity": "info", "timestamp": "soon"}},
     "payload.timestamp"),
])
def test_malformed_events_are_refused_naming_the_field(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PayloadError, match=fragment.replace(".", r"\.")):
        parse_v2(body)


def test_a_timestamp_with_an_offset_and_a_stray_z_is_read() -> None:
    event = parse_v2(trigger(timestamp="2026-11-23T09:00:00+00:00Z"))
    assert event.payload is not None and event.payload.timestamp is not None
    assert event.payload.timestamp.isoformat() == "2026-11-23T09:00:00+00:00"
