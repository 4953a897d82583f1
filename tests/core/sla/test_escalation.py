"""Escalation chains: levels in order, waits, repeats, stopped by acknowledgement; pages are DMs."""

from __future__ import annotations

from sqlmodel import col, select

from opsloop.authz import StaticDirectory
from opsloop.core import Core
from opsloop.models import AuditEvent, OutboxMessage
from opsloop.types import Severity
from tests.core.sla.support import COMMANDER, RESPONDER, dms, pending, thread
from tests.support import FakeClock


def run_minutes(services: Core, clock: FakeClock, minutes: int) -> list[tuple[int, str]]:
    """Sweep once a minute; return (minute, user) for every page sent."""
    start = clock.now()
    seen = len(dms(services))  # pages sent before are not this run's
    pages: list[tuple[int, str]] = []
    for _ in range(minutes + 1):
        services.sweeper.sweep()
        sent = dms(services)
        minute = int((clock.now() - start).total_seconds() // 60)
        pages += [(minute, target) for target in sent[seen:]]
        seen = len(sent)
        clock.advance(minutes=1)
    return pages


def test_levels_and_repeats_page_in_order_then_give_up(services: Core, clock: FakeClock) -> None:
    on_call = services.oncall.now_and_next("sre")[0].user
    services.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    pages = run_minutes(services, clock, 60)
    # sre-primary: oncall:sre, wait 5m; role:commander (U0RESP1), wait 10m; repeat 2 more rounds
    assert pages == [(0, on_call), (5, COMMANDER), (15, on_call), (20, COMMANDER),
                     (30, on_call), (35, COMMANDER)]
    paged = [line for line in thread(services, "INC-1") if "Paged" in line or "Nobody" in line]
    assert paged[0] == f"📟 Paged <@{on_call}> for INC-1 (level 1 of 2, round 1 of 3)"
    assert paged[-1] == "🚨 Nobody acknowledged INC-1 after 3 rounds of sre-primary"
    assert pending(services, "page") == []
    with services.db.transaction() as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "escalation.page")
                        .order_by(col(AuditEvent.seq))).all()
    assert [(e.after or {})["level"] for e in events] == [1, 2, 1, 2, 1, 2]


def test_a_page_is_a_dm_with_an_acknowledge_button_that_stops_the_chain(services: Core,
                                                                       clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    services.sweeper.sweep()
    with services.db.transaction() as s:
        page = s.exec(select(OutboxMessage).where(col(OutboxMessage.key).startswith("page:"))).one()
    button = page.payload["message"]["buttons"][0]
    assert (button["label"], button["action"], button["value"]) == ("Acknowledge", "workitem.acknowledge",
                                                                    "INC-1")
    clock.advance(minutes=3)
    services.commands.press(button["action"], button["value"], actor=RESPONDER)
    assert run_minutes(services, clock, 40) == []
    assert services.workitems.get("INC-1").item.state == "acknowledged"


def test_escalate_on_breach_pages_only_after_the_response_target(services: Core,
                                                                 clock: FakeClock) -> None:
    policy = services.policy
    sev1 = policy.sla.policies[0].model_copy(update={"escalate_on": "breach"})
    sla = policy.sla.model_copy(update={"policies": [sev1, *policy.sla.policies[1:]]})
    services.sla.policy = services.sla.book.policy = policy.model_copy(update={"sla": sla})
    services.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    pages = run_minutes(services, clock, 6)
    assert [minute for minute, _ in pages] == [5]


def test_user_groups_are_paged_member_by_member(services: Core, clock: FakeClock) -> None:
    services.authz.directory = StaticDirectory({"S0DBA": frozenset({"U0DBA2", "U0DBA1"})})
    users = services.sla.escalations.resolve
    with services.db.transaction() as s:
        assert users(s, ["S0DBA", "role:commander", "U0DBA1"], clock.now()) == ["U0DBA1", "U0DBA2", COMMANDER]


def test_once_acknowledged_every_page_says_who_took_it_and_loses_its_button(services: Core,
                                                                             clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="db down", severity=Severity.SEV1)
    run_minutes(services, clock, 6)  # level 1, then level 2: two people paged
    with services.db.transaction() as s:
        pages = s.exec(select(OutboxMessage).where(col(OutboxMessage.key).startswith("page:"))).all()
    assert len(pages) == 2
    services.commands.press("workitem.acknowledge", "INC-1", actor=RESPONDER)
    with services.db.transaction() as s:
        edits = {m.update_key: m.payload["message"] for m in s.exec(
            select(OutboxMessage).where(col(OutboxMessage.key).startswith("settled:page:")))}
    assert set(edits) == {p.key for p in pages}
    for edit in edits.values():
        assert edit["text"] == f"✅ INC-1 was acknowledged by <@{RESPONDER}>: db down"
        assert edit["buttons"] == [] and "You are paged: INC-1" in edit["body"]
    services.commands.handle("/incident", "resolve INC-1 fixed", actor=RESPONDER)  # settled once only
    with services.db.transaction() as s:
        assert len(s.exec(select(OutboxMessage).where(
            col(OutboxMessage.key).startswith("settled:page:"))).all()) == 2
