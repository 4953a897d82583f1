"""A batch reads what its signals name once, not once per webhook, and still sees its own changes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlmodel import select

from opsloop.intake.models import Alert
from opsloop.models import WorkItem
from tests.core.test_intake import am, v2

LOOKUPS = ("FROM alerts WHERE", "FROM alert_groups WHERE", "FROM work_items WHERE")


@contextmanager
def statements(services: Any) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(services.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(services.db.engine, "before_cursor_execute", record)


def lookups(seen: list[str]) -> int:
    """Reads of alerts, groups and work items by key (the grouped count of firing alerts aside)."""
    return sum(1 for s in seen if s.startswith("SELECT") and "count(" not in s and any(t in s for t in LOOKUPS))


def test_a_batch_of_webhooks_to_known_groups_reads_its_alerts_groups_and_items_once(services: Any) -> None:
    groups = [f"Group{n}" for n in range(16)]
    services.intake.ingest([("prometheus", am(g, (f"{g}-a", "firing"))) for g in groups])
    for size in (4, 16):
        batch = [("prometheus", am(g, (f"{g}-a", "firing"), (f"{g}-{size}", "firing"))) for g in groups[:size]]
        with statements(services) as seen:
            outcomes = services.intake.ingest(batch)
        assert [(o.created, o.touched) for o in outcomes] == [([], [f"INC-{n + 1}"]) for n in range(size)]
        # one read each of alerts, groups and work items, however many webhooks (was three per webhook)
        assert lookups(seen) == 3, seen
        assert sum("GROUP BY alerts.work_item_id" in s for s in seen) == 1


def test_a_key_resolved_earlier_in_the_same_batch_opens_a_new_incident_when_it_triggers_again(
        services: Any) -> None:
    [first] = services.intake.ingest([("monitors", v2("trigger", "disk-1"))])
    assert first.created == ["INC-1"]
    again, resolved, reborn = services.intake.ingest([
        ("monitors", v2("trigger", "disk-1")), ("monitors", v2("resolve", "disk-1")),
        ("monitors", v2("trigger", "disk-1"))])
    assert again.created == [] and again.touched == ["INC-1"]
    assert resolved.touched == ["INC-1"]
    assert reborn.created == ["INC-2"]  # the row read ahead was retired by the resolve


def test_a_group_retired_in_the_batch_is_not_joined_by_the_next_webhook(services: Any) -> None:
    services.intake.ingest([("prometheus", am("Api5xx", ("x1", "firing")))])
    services.workitems.act(actor="U0RESP1", ref="INC-1", action="resolve")
    first, second = services.intake.ingest([("prometheus", am("Api5xx", ("x2", "firing"))),
                                             ("prometheus", am("Api5xx", ("x3", "firing")))])
    assert first.created == ["INC-2"] and second.created == []
    with services.db.transaction() as s:
        joined = dict(s.exec(select(Alert.key, WorkItem.ref).where(WorkItem.id == Alert.work_item_id)).all())
    assert joined == {"x1": "INC-1", "x2": "INC-2", "x3": "INC-2"}
