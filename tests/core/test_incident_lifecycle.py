"""The lifecycle's missing pieces: changing severity, incident roles, closing with runbook steps open,
and a card that shows a resolved or closed incident as over."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlmodel import col, func, select

from opsloop.core import Core
from opsloop.errors import OpsloopError, PermissionDenied
from opsloop.loops.models import FeedbackLoop
from opsloop.models import AuditEvent, OutboxMessage, TimelineEvent, WorkItem
from opsloop.table import Sources
from opsloop.timers.models import Timer
from opsloop.workitems import find
from tests.support import ROOT, FakeClock

COMMANDER, RESPONDER, CSM = "U0RESP1", "U0RESP2", "U0CSM1"


@pytest.fixture
def sources(db_url: str, tmp_path: Path) -> Sources:
    """The sample policy, with declarers not taken as responding: these tests watch response clocks
    carried across a severity change (tests/core/test_honest_clocks.py covers the default)."""
    policy = yaml.safe_load((ROOT / "opsloop.yml").read_text())
    policy["accounts"] = str(ROOT / "accounts.yml")
    policy["sla"]["declared_meets_response"] = False
    path = tmp_path / "opsloop.yml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return Sources(database_url=db_url, config=path, runbooks_dir=ROOT / "runbooks",
                   playbooks_dir=ROOT / "playbooks")


def run(services: Core, text: str, actor: str = COMMANDER) -> str:
    return services.commands.handle("/incident", text, actor=actor).text


def audit_of(services: Core, ref: str, action: str) -> list[AuditEvent]:
    with services.db.transaction() as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.subject == ref, AuditEvent.action == action)
                           .order_by(col(AuditEvent.seq))))


def clocks(services: Core, ref: str) -> dict[str, tuple[str, int, object]]:
    with services.db.transaction() as s:
        item = find(s, ref)
        return {c.target: (c.state, c.target_seconds, c.due_at) for c in services.sla.clocks(s, item)}


def timeline(services: Core, ref: str) -> list[str]:
    return [e.text for e in services.workitems.get(ref).timeline]


def counts(services: Core) -> tuple[int, int, int]:
    with services.db.transaction() as session:
        return tuple(session.exec(select(func.count()).select_from(table)).one()  # type: ignore[return-value]
                     for table in (WorkItem, AuditEvent, OutboxMessage))


# ---------------------------------------------------------------------------------- severity


def test_raising_severity_reevaluates_sla_escalation_audiences_and_channel(services: Core,
                                                                             clock: FakeClock) -> None:
    """The issue's example: severity could not be changed after declaring."""
    run(services, 'declare "Checkout API returns 500" sev3 tenant:acme')
    assert clocks(services, "INC-1") == {}  # the sample policy holds no sev3 incident to a target
    start = clock.current
    clock.advance(minutes=3)
    said = run(services, "severity INC-1 sev1 every plan is affected")
    assert said.startswith("INC-1: severity sev3 → sev1")
    item = services.workitems.get("INC-1").item
    assert item.severity == "sev1"
    # the sev1 policy from the declaration on: 3 of the 5 minutes to respond are used
    now = clocks(services, "INC-1")
    assert now["response"] == ("running", 300, start + timedelta(minutes=5))
    assert now["resolution"] == ("running", 3600, start + timedelta(hours=1))
    assert now["update"] == ("running", 1800, clock.current + timedelta(minutes=30))
    with services.db.transaction() as s:
        pages = s.exec(select(Timer).where(Timer.kind == "page", col(Timer.fired_at).is_(None))).all()
        assert [p.payload["chain"] for p in pages] == ["sre-primary"]
        audiences = {loop.audience for loop in s.exec(select(FeedbackLoop))}
        channel_op = s.exec(select(OutboxMessage).where(OutboxMessage.key == "channel:INC-1")).one()
    assert {"product", "sales", "customers"} <= audiences  # sev1 audiences that sev3 did not concern
    assert channel_op.payload["name"].startswith("inc-1-checkout")
    assert "<@U0RESP1> changed the severity of INC-1 from sev3 to sev1: every plan is affected" in timeline(
        services, "INC-1")
    (changed,) = audit_of(services, "INC-1", "incident.severity")
    assert changed.before is not None and changed.after is not None
    assert (changed.actor, changed.before["severity"], changed.after["severity"]) == (COMMANDER, "sev3", "sev1")
    assert audit_of(services, "INC-1", "sla.reevaluated")[0].after["escalation"] == "sre-primary"  # type: ignore[index]


def test_a_clock_keeps_its_elapsed_time_across_a_severity_change(services: Core, clock: FakeClock) -> None:
    run(services, 'declare "Login slow" sev2')
    start = clock.current
    assert clocks(services, "INC-1")["response"] == ("running", 900, start + timedelta(minutes=15))
    clock.advance(minutes=10)
    run(services, "severity INC-1 sev1")
    state, seconds, due = clocks(services, "INC-1")["response"]
    assert (state, seconds, due) == ("running", 300, clock.current)  # 10 of 5 minutes used: due now
    services.sweeper.sweep()
    assert clocks(services, "INC-1")["response"][0] == "breached"
    run(services, "ack INC-1")
    run(services, "severity INC-1 sev2")  # a settled clock stays settled
    assert clocks(services, "INC-1")["response"][0] == "breached"
    assert clocks(services, "INC-1")["resolution"][1] == 4 * 3600


@pytest.mark.parametrize(("text", "says"), [
    ("severity INC-1 sev2", "INC-1 is already sev2"),
    ("severity INC-1 sev5", "'sev5' is not a severity"),
    ("severity INC-1", "/incident severity needs a severity"),
    ("severity ESC-1 sev1", "ESC-1 is an escalation"),
    ("role INC-1 juggler @U0RESP2", "'juggler' is not an incident role: use commander, comms, scribe or liaison"),
    ("role INC-1 scribe @nobody", "unknown user @nobody"),
    ("role INC-1 scribe", "/incident role needs a user"),
    ("role INC-1 scribe @U0RESP1", "<@U0RESP1> already is the scribe of INC-1"),
])
def test_severity_and_role_mistakes_are_refused_and_change_nothing(services: Core, text: str,
                                                                   says: str) -> None:
    run(services, 'declare "Login slow" sev2')
    run(services, "role INC-1 scribe @U0RESP1")
    before = counts(services)
    with pytest.raises(OpsloopError) as refused:
        run(services, text)
    assert says in str(refused.value)
    assert counts(services) == before


def test_a_closed_incident_keeps_its_severity(services: Core) -> None:
    run(services, 'declare "x" sev3')
    run(services, "resolve INC-1")
    run(services, 'close INC-1 --force "tracked elsewhere"')
    with pytest.raises(OpsloopError, match="INC-1 is closed: reopen it to change its severity"):
        run(services, "severity INC-1 sev1")


# ---------------------------------------------------------------------------------- roles


def test_roles_with_their_duties_on_the_card_and_commander_handoff_on_the_timeline(services: Core) -> None:
    run(services, 'declare "Search stale" sev3')
    assert run(services, "role INC-1 scribe @U0RESP2") == "INC-1: scribe is now <@U0RESP2>"
    card = services.cards.of("INC-1")
    assert card.body is not None
    assert "*Scribe*: <@U0RESP2> — Keeps the timeline - decisions, times and who did what" in card.body
    assert "*Liaison*: nobody yet — Speaks with the affected customers' own teams" in card.body
    assert "*Commander*: <@U0RESP1> — Leads the response; decides, delegates" in card.body
    run(services, "role INC-1 commander @U0RESP2")  # the owner, as /incident assign sets it
    run(services, "comms INC-1 @U0RESP1")  # the comms role, as before
    item = services.workitems.get("INC-1").item
    assert (item.owner, item.comms_owner) == (RESPONDER, COMMANDER)
    lines = timeline(services, "INC-1")
    assert "<@U0RESP1> made <@U0RESP2> scribe of INC-1" in lines
    assert "<@U0RESP1> handed command of INC-1 from <@U0RESP1> to <@U0RESP2>" in lines
    assert "<@U0RESP1> made comms owner <@U0RESP1> of INC-1" in lines
    run(services, "role INC-1 scribe @U0RESP1", actor=RESPONDER)
    assert "<@U0RESP2> made <@U0RESP1> scribe of INC-1 (was <@U0RESP2>)" in timeline(services, "INC-1")
    (first, second) = audit_of(services, "INC-1", "incident.role")
    assert (first.before, first.after) == ({"role.scribe": None}, {"role.scribe": RESPONDER})
    assert second.after == {"role.scribe": COMMANDER}
    # a role counts as yours in lists
    run(services, 'declare "Other" sev3', actor=RESPONDER)
    run(services, "role INC-2 liaison @U0CSM1", actor=RESPONDER)
    assert "INC-2" in services.commands.handle("/incident", "list mine", actor=CSM).text


def test_roles_need_their_permission(services: Core) -> None:
    run(services, 'declare "x" sev3')
    with pytest.raises(PermissionDenied, match=r"incident\.role|needs the role"):
        run(services, "role INC-1 scribe @U0RESP2", actor=CSM)
    with pytest.raises(PermissionDenied):  # commander is the owner: /incident assign's permission
        run(services, "role INC-1 commander @U0RESP2", actor=RESPONDER)


# ---------------------------------------------------------------------------------- closing


def test_close_refuses_while_runbook_steps_are_open_unless_forced_with_a_reason(services: Core) -> None:
    """The issue's example: `/incident close` succeeded with runbook steps still open."""
    run(services, 'declare "Checkout down" sev2')
    run(services, "resolve INC-1")
    before = counts(services)
    with pytest.raises(OpsloopError) as refused:
        run(services, "close INC-1")
    assert "INC-1 still has runbook steps open: command, assess, comms_owner" in str(refused.value)
    assert '--force "reason"' in str(refused.value)
    with pytest.raises(OpsloopError, match="--force needs the reason"):
        run(services, "close INC-1 --force")
    assert counts(services) == before
    assert services.workitems.get("INC-1").item.state == "resolved"
    assert run(services, 'close INC-1 --force "postmortem tracked in Jira"') == "INC-1 closed — now closed"
    (forced,) = audit_of(services, "INC-1", "runbook.close_forced")
    assert forced.after is not None and forced.after["open_steps"][:2] == ["command", "assess"]
    (closed,) = audit_of(services, "INC-1", "incident.close")
    assert closed.after is not None and closed.after["forced"] is True
    assert ("<@U0RESP1> closed INC-1 with runbook steps still open (forced): postmortem tracked in Jira"
            in timeline(services, "INC-1"))


def test_close_goes_through_once_every_step_is_settled(services: Core) -> None:
    run(services, 'declare "x" sev2')
    run(services, "resolve INC-1")
    with services.db.transaction() as s:
        left = services.runbooks.open_steps(s, find(s, "INC-1"))
    assert len(left) == 7
    for step in left[:-1]:  # in order: each opens the next; the notify step posts by itself
        if step != "tell_support":
            services.commands.handle("/runbook", f'skip INC-1 {step} "not needed"', actor=COMMANDER)
    with pytest.raises(OpsloopError, match="INC-1 still has runbook steps open: postmortem\\."):
        run(services, "close INC-1")
    services.commands.handle("/runbook", "done INC-1 postmortem", actor=COMMANDER)
    assert run(services, "close INC-1") == "INC-1 closed — now closed"
    assert audit_of(services, "INC-1", "runbook.close_forced") == []


def test_a_resolved_or_closed_card_changes_colour_and_keeps_only_reopen(services: Core) -> None:
    run(services, 'declare "Checkout down" sev2')
    live = services.cards.of("INC-1")
    assert live.text.startswith("🟠") and "Acknowledge" in [b.label for b in live.buttons]
    run(services, "resolve INC-1")
    resolved = services.cards.of("INC-1")
    assert resolved.text.startswith("🟢 INC-1")
    assert [b.action for b in resolved.buttons if b.action.startswith(("workitem.", "clock."))] == [
        "workitem.reopen"]
    run(services, 'close INC-1 --force "done"')
    closed = services.cards.of("INC-1")
    assert closed.text.startswith("⚫ INC-1")
    assert [b.action for b in closed.buttons if b.action.startswith(("workitem.", "clock."))] == [
        "workitem.reopen"]
    services.commands.press("workitem.reopen", "INC-1", actor=COMMANDER)
    item = services.workitems.get("INC-1").item
    assert (item.state, item.closed_at, item.resolved_at) == ("triggered", None, None)
    assert services.cards.of("INC-1").text.startswith("🟠")
    with services.db.transaction() as s:
        assert s.exec(select(TimelineEvent.action).where(TimelineEvent.action == "reopen")).all() == ["reopen"]
