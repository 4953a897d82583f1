"""Follow-ups (ACT-n): made on an incident, due on the business calendar, reminded, overdue, closed (FakeClock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.errors import DomainError, NotFound, PermissionDenied, UsageError
from opsloop.messages import Message
from opsloop.models import AuditEvent, OutboxMessage, TimelineEvent
from opsloop.reviews.models import FollowUp
from opsloop.reviews.workdays import due
from opsloop.sla.calendars import AlwaysOn, working_time
from opsloop.timers.models import Timer
from opsloop.types import Severity
from tests.support import FakeClock

RESP1, RESP2, CSM, ADMIN = "U0RESP1", "U0RESP2", "U0CSM1", "U0ADMIN"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def dms(services: Core, to: str) -> list[Message]:
    with services.db.transaction() as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.target == to,
                                                        col(OutboxMessage.key).startswith("followup:"))
                            .order_by(col(OutboxMessage.id))).all()
        return [Message.from_json(r.payload["message"]) for r in rows]


def run(services: Core, text: str, actor: str = RESP1, command: str = "/incident") -> str:
    return services.commands.handle(command, text, actor=actor).text


def declare(services: Core, **labels: str) -> str:
    return services.workitems.declare(actor=RESP1, title="EU primary down", severity=Severity.SEV2,
                                      tenants=["acme"], labels=labels).ref


def test_working_days_count_to_the_close_of_business_skipping_weekends_and_holidays(services: Core) -> None:
    business = working_time(services.policy, "business")  # mon-fri 09:00-17:00 Berlin, 25+26 Dec off
    monday = utc(2026, 11, 23, 9, 0)  # 10:00 in Berlin
    assert due(business, monday, timedelta(days=2)) == utc(2026, 11, 25, 16, 0)  # Wed 17:00 Berlin
    assert due(business, monday, timedelta(days=5)) == utc(2026, 11, 30, 16, 0)  # the next Monday
    assert due(business, utc(2026, 12, 23, 9, 0), timedelta(days=2)) == utc(2026, 12, 28, 16, 0)  # Christmas
    assert due(business, monday, timedelta(hours=4)) == utc(2026, 11, 23, 13, 0)  # working hours
    assert due(business, monday, timedelta(days=1, hours=2)) == utc(2026, 11, 25, 10, 0)  # Tue 17:00 + 2h
    assert due(AlwaysOn(), monday, timedelta(days=2)) == monday + timedelta(days=2)


def test_a_followup_is_made_reminded_overdue_and_closed(services: Core, clock: FakeClock) -> None:
    ref = declare(services, service="db-eu")
    reply = run(services, f'followup {ref} "Add a replica lag alert" @{RESP2} due:2d '
                          'link:https://tracker.example/T-9')
    assert reply == f"Made ACT-1 on {ref} for <@{RESP2}>: Add a replica lag alert — due Wed 25 Nov 17:00."
    [told] = dms(services, RESP2)  # its owner hears of it, with a way to close it
    assert told.text == "📌 ACT-1: Add a replica lag alert"
    assert dict(told.fields)["Theme"] == "service:db-eu"
    assert [(b.label, b.action, b.value) for b in told.buttons] == [("Close…", "followup.close", "ACT-1")]
    with services.db.transaction() as session:
        lines = [t.text for t in session.exec(select(TimelineEvent).where(
            TimelineEvent.action == "followup.created"))]
        timers = [(t.due_at, t.payload["stage"]) for t in session.exec(
            select(Timer).where(Timer.kind == "followup.remind").order_by(col(Timer.due_at)))]
    assert lines == [f"📌 <@{RESP1}> made ACT-1 for <@{RESP2}>: Add a replica lag alert — due Wed 25 Nov 17:00"]
    assert timers == [(utc(2026, 11, 24, 16, 0), "soon"), (utc(2026, 11, 25, 16, 0), "overdue")]

    clock.current = utc(2026, 11, 24, 16, 0)
    services.sweeper.sweep()
    assert dms(services, RESP2)[-1].text == "⏰ ACT-1 is due Wed 25 Nov 17:00: Add a replica lag alert"
    assert run(services, "list overdue", command="/followup") == "No open follow-up is overdue."

    clock.current = utc(2026, 11, 25, 16, 0)
    services.sweeper.sweep()
    assert dms(services, RESP2)[-1].text == ("⏰ ACT-1 is overdue (it was due Wed 25 Nov 17:00): "
                                             "Add a replica lag alert")
    listed = run(services, "list overdue", command="/followup")
    assert listed == ("Overdue follow-ups (1), soonest due first:\n⚠️ ACT-1 Add a replica lag alert "
                      f"(<https://tracker.example/T-9|link>) — <@{RESP2}>, overdue since Wed 25 Nov 17:00 · from {ref}")
    assert run(services, "list mine", actor=RESP2, command="/followup").startswith("Your open follow-ups (1)")
    assert run(services, "list mine", actor=RESP1, command="/followup") == "You own no open follow-ups."

    clock.current = utc(2026, 11, 26, 16, 0)  # one working day later: reminded again
    services.sweeper.sweep()
    assert len(dms(services, RESP2)) == 4

    with pytest.raises(PermissionDenied, match="owning it or the role commander or admin"):
        run(services, 'close ACT-1 "done"', actor=CSM, command="/followup")
    clock.current = utc(2026, 11, 26, 17, 0)
    assert run(services, 'close act-1 "alert added, see the PR"', actor=RESP2, command="/followup") == \
        "Closed ACT-1."
    with pytest.raises(DomainError, match="was closed by"):
        run(services, 'close ACT-1 "again"', actor=RESP2, command="/followup")
    clock.current = utc(2026, 11, 27, 16, 0)
    services.sweeper.sweep()  # the next overdue reminder finds it closed
    assert len(dms(services, RESP2)) == 4
    with services.db.transaction() as session:
        found = session.exec(select(FollowUp)).one()
        assert (found.closed_by, found.note, found.reminders) == (RESP2, "alert added, see the PR", 3)
        actions = [a for a in session.exec(select(AuditEvent.action).order_by(col(AuditEvent.seq)))
                   if a.startswith("followup.")]
        closed = session.exec(select(TimelineEvent.text).where(TimelineEvent.action == "followup.closed")).one()
    assert actions == ["followup.created", "followup.reminded", "followup.reminded", "followup.reminded",
                       "followup.closed"]
    assert closed == f"✅ <@{RESP2}> closed ACT-1 (Add a replica lag alert): alert added, see the PR"


def test_defaults_owner_and_due_and_the_close_form(services: Core, clock: FakeClock) -> None:
    ref = declare(services)
    run(services, f'followup {ref} "Write the failover runbook"')
    view = services.followups.show("ACT-1")
    assert view.followup.owner == RESP1  # nobody named: whoever typed it
    assert view.followup.due_at == due(working_time(services.policy, "business"), clock.now(), timedelta(days=14))
    assert view.followup.themes == ["runbook:generic-incident"]  # no label: the runbook it runs
    form = services.commands.press("followup.close", "ACT-1", actor=RESP1).form
    assert form is not None and (form.id, form.context) == ("followup.close", "ACT-1")
    reply = services.commands.submit("followup.close", "ACT-1", {"note": " runbook merged "}, actor=RESP1)
    assert reply.text == "Closed ACT-1." and services.followups.show("ACT-1").followup.note == "runbook merged"


@pytest.mark.parametrize(("text", "refused"), [
    ('followup INC-1 "x" link:javascript:alert(1)', r"is not an http\(s\) link"),
    ("followup INC-1 @U0RESP2", 'needs "what to do"'),
    ('followup INC-1 "x" due:soon', "invalid duration"),
    ('followup INC-1 "x" @U0NOBODY', "unknown user U0NOBODY"),
    ('followup ESC-1 "x"', "ESC-1 is an escalation"),
    ('followup INC-9 "x"', "no work item INC-9"),
])
def test_bad_followups_are_refused_and_change_nothing(services: Core, text: str, refused: str) -> None:
    declare(services)
    with pytest.raises((UsageError, DomainError), match=refused):
        run(services, text)
    with services.db.transaction() as session:
        assert session.exec(select(FollowUp)).all() == []


def test_who_may_make_them_and_unknown_ids(services: Core) -> None:
    ref = declare(services)
    with pytest.raises(PermissionDenied, match="make follow-ups"):
        run(services, f'followup {ref} "x"', actor=CSM)
    with pytest.raises(NotFound, match="no follow-up ACT-7"):
        run(services, 'close ACT-7 "x"', command="/followup")
    with pytest.raises(UsageError, match="is not a follow-up id"):
        run(services, "show INC-1", command="/followup")
    assert ZoneInfo(services.policy.timezone)  # the policy's zone words the dates
