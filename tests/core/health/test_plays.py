"""Plays: Take it -> a checklist due on the business calendar -> reminders -> an outcome (FakeClock)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.errors import InvalidInput, PermissionDenied, UsageError
from opsloop.health.models import HealthPlay, HealthPlayStep, HealthPrompt
from opsloop.messages import Message
from opsloop.models import Account, AuditEvent, OutboxMessage
from opsloop.timers.models import Timer
from opsloop.types import Severity
from tests.support import FakeClock

CSM, RESPONDER, ADMIN, LEADER, SPONSOR = "U0CSM1", "U0RESP1", "U0ADMIN", "U0CEO", "U0EXEC1"


def dms(services: Core, to: str, prefix: str = "health:play:") -> list[Message]:
    with services.db.transaction() as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.target == to,
                                                        col(OutboxMessage.key).startswith(prefix))
                            .order_by(col(OutboxMessage.id))).all()
        return [Message.from_json(r.payload["message"]) for r in rows]


def actions(services: Core) -> list[str]:
    with services.db.transaction() as session:
        return [a for a in session.exec(select(AuditEvent.action).order_by(col(AuditEvent.seq)))
                if a.startswith("health.play")]


def acme_at_risk(services: Core) -> HealthPrompt:
    """A sev1 on acme (enterprise, renewing in 69 days) fires the renewal rule: at risk at 75."""
    services.workitems.declare(actor=RESPONDER, title="EU primary down", severity=Severity.SEV1, tenants=["acme"])
    with services.db.transaction() as session:
        return session.exec(select(HealthPrompt)).one()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_take_it_to_reminders_to_an_outcome(services: Core, clock: FakeClock) -> None:
    prompt = acme_at_risk(services)  # Mon 23 Nov 2026, 10:00 in Berlin
    reply = services.commands.press("health.take", str(prompt.id), actor=CSM)
    assert reply.text == ("Opened PLAY-1 for Acme Corp: executive-outreach 1.0.0, 3 steps; "
                          "reminders come to you by DM.")
    assert reply.message is not None and reply.message.body is not None
    # each step with its due time: working hours 09:00-17:00 Berlin, counted from 10:00 Monday
    assert reply.message.body.split("\n") == [
        "☐ 1. Brief our executive on the incidents, the fix and the account's renewal — due Mon 23 Nov 14:00",
        "☐ 2. Call the customer's sponsor together; own the impact, share the fix and the prevention plan "
        "— due Wed 25 Nov 10:00",
        "☐ 3. Agree a check-in before the renewal and send the written summary — due Thu 26 Nov 10:00"]
    [card] = dms(services, CSM)  # the checklist, in the CSM's DMs, with buttons
    assert [b.label for b in card.buttons] == ["Done 1", "Done 2", "Done 3", "Close with outcome…"]
    with services.db.transaction() as session:
        taken = session.get(HealthPrompt, prompt.id)
        assert taken is not None and taken.status == "taken"
        play = session.exec(select(HealthPlay)).one()
        assert (play.playbook_id, play.playbook_version, play.prompt_id, play.score) == (
            "executive-outreach", "1.0.0", prompt.id, 75)
        assert len(play.playbook_sha256) == 64

    clock.current = utc(2026, 11, 23, 13, 0)  # 14:00 Berlin: step 1 is due
    services.sweeper.sweep()
    [due] = dms(services, CSM, "health:play:1:remind:")
    assert due.text == "⚠️ PLAY-1 Acme Corp: “Brief our executive on the incidents, the fix and the account's " \
                       "renewal” is due now"
    assert [(b.label, b.action, b.value) for b in due.buttons] == [("Done", "health.step", "1:brief_executive")]

    clock.current = utc(2026, 11, 23, 15, 30)
    services.commands.press("health.step", "1:brief_executive", actor=CSM)  # done, late
    with services.db.transaction() as session:  # the card was edited in place
        edit = session.exec(select(OutboxMessage).where(OutboxMessage.update_key == "health:play:1")).one()
    assert Message.from_json(edit.payload["message"]).text.endswith("1/3 steps done")

    clock.current = utc(2026, 11, 24, 13, 0)  # Tue 14:00 Berlin: 4 working hours before step 2 is due
    services.sweeper.sweep()
    texts = [m.text for m in dms(services, CSM, "health:play:1:remind:")]
    assert texts[1:] == ["⏰ PLAY-1 Acme Corp: “Call the customer's sponsor together; own the impact, share the "
                         "fix and the prevention plan” is due Wed 25 Nov 10:00"]  # step 1's repeat was dropped

    clock.current = utc(2026, 11, 25, 12, 0)  # Wed 13:00 Berlin: step 2 is 3 working hours late
    services.sweeper.sweep()
    assert dms(services, CSM, "health:play:1:remind:")[-1].text.endswith(
        "is overdue by 3h (due Wed 25 Nov 10:00)")
    assert "⚠️ *PLAY-1* Acme Corp" in services.commands.handle("/health", "plays overdue", actor=CSM).text

    form = services.commands.press("health.close", "1", actor=CSM).form
    assert form is not None and form.id == "health.close"
    assert form.fields[0].options == ["saved", "churned", "contracted", "expanded", "not-a-risk"]
    closed = services.commands.submit("health.close", form.context,
                                      {"outcome": "saved", "note": "  renewal call booked  "}, actor=CSM)
    assert closed.text == "Closed PLAY-1: saved."
    clock.current = utc(2026, 11, 30, 12, 0)
    services.sweeper.sweep()  # every reminder left finds the play closed
    with services.db.transaction() as session:
        play = session.exec(select(HealthPlay)).one()
        assert (play.outcome, play.note, play.closed_by) == ("saved", "renewal call booked", CSM)
        steps = session.exec(select(HealthPlayStep).order_by(col(HealthPlayStep.position))).all()
        assert [s.reminders for s in steps] == [1, 2, 0]
        left = session.exec(select(Timer.outcome).where(Timer.kind == "health.play.remind",
                                                        col(Timer.fired_at).is_not(None))).all()
        assert "skipped: the play is closed" in left and "skipped: the step is done" in left
    assert actions(services) == ["health.play.opened", "health.play.reminded", "health.play.step_done",
                                 "health.play.reminded", "health.play.reminded", "health.play.closed"]
    assert "No open plays." in services.commands.handle("/health", "plays", actor=CSM).text


def test_take_by_command_picks_the_playbook_and_refuses_a_second_play(services: Core) -> None:
    reply = services.commands.handle("/health", "take globex playbook:service-review", actor=CSM)
    assert reply.text.startswith("Opened PLAY-1 for Globex: service-review 1.0.0, 3 steps")
    with pytest.raises(InvalidInput, match="Globex already has PLAY-1"):
        services.commands.handle("/health", "take globex", actor=CSM)
    shown = services.commands.handle("/health", "globex", actor=CSM).message
    assert shown is not None and dict(shown.fields)["Play"].startswith("▶️ *PLAY-1* Globex · service-review")
    with pytest.raises(Exception, match="no playbook 'nope'"):
        services.commands.handle("/health", "take initech playbook:nope", actor=CSM)


def test_who_may_run_a_play(services: Core) -> None:
    with pytest.raises(PermissionDenied, match="answer prompts and run plays for Globex"):
        services.commands.handle("/health", "take globex", actor=RESPONDER)
    services.commands.handle("/health", "take globex", actor=CSM)
    with pytest.raises(PermissionDenied):
        services.commands.handle("/health", "done PLAY-1 prepare", actor=RESPONDER)
    with pytest.raises(UsageError, match="/health close needs a note"):
        services.commands.handle("/health", 'close PLAY-1 saved "  "', actor=ADMIN)
    with pytest.raises(UsageError, match="'won' is not an outcome: use saved, churned, contracted, expanded or "
                                         "not-a-risk"):
        services.commands.handle("/health", 'close PLAY-1 won "great"', actor=ADMIN)
    with pytest.raises(InvalidInput, match="note: say in a few words"):  # the service checks it too (the form)
        services.commands.submit("health.close", "1", {"outcome": "saved", "note": " "}, actor=ADMIN)
    assert services.commands.handle("/health", 'close PLAY-1 not-a-risk "false alarm"', actor=ADMIN).text == \
        "Closed PLAY-1: not-a-risk."
    # a responder sees only their own plays; the CSM sees everyone's
    assert services.commands.handle("/health", "plays", actor=RESPONDER).text == "No open plays."


def test_a_high_risk_enterprise_account_escalates_to_its_sponsor_or_the_leaders(
        services: Core, clock: FakeClock) -> None:
    at = clock.now().isoformat()
    services.health.ingest([{"tenant": "acme", "kind": "usage", "value": -1, "at": at},
                            {"tenant": "acme", "kind": "nps", "value": -100, "at": at}], source="health")
    services.workitems.declare(actor=RESPONDER, title="Down", severity=Severity.SEV1, tenants=["acme"])  # 25
    reply = services.commands.handle("/health", "take acme", actor=CSM)
    assert reply.text.endswith("Executive escalation: <@U0EXEC1> told.")
    [told] = dms(services, SPONSOR)
    assert told.text.startswith("🚨 Executive escalation: ▶️ PLAY-1 · Acme Corp")
    assert told.buttons == []  # the checklist is the CSM's to work
    services.commands.handle("/health", 'close PLAY-1 saved "exec call done"', actor=CSM)
    assert dms(services, SPONSOR)[-1].text.endswith("closed: saved")
    # no sponsor in the catalog: the leader role hears instead
    with services.db.transaction() as session:
        acme = session.get(Account, "acme")
        assert acme is not None
        acme.executive_sponsor = None
        session.add(acme)
    assert services.commands.handle("/health", "take acme", actor=CSM).text.endswith(
        "Executive escalation: <@U0CEO> told.")
    assert len(dms(services, LEADER)) == 1
    # a healthier enterprise account or another tier does not escalate
    assert "Executive" not in services.commands.handle("/health", "take globex", actor=CSM).text
