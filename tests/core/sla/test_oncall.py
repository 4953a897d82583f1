"""Rotations hand over on time (across DST), overrides win, /oncall says who is on now and next."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from opsloop.core import Core
from opsloop.errors import InvalidInput, PermissionDenied, UsageError
from opsloop.oncall import parse_moment, rotation_shift
from opsloop.policy import Rotation
from tests.core.sla.support import COMMANDER, RESPONDER, audit_actions
from tests.support import FakeClock

BERLIN = ZoneInfo("Europe/Berlin")
WEEKLY = Rotation(rotation=["U0A", "U0B", "U0C"], handoff="mon 09:00", length=timedelta(weeks=1),
                  anchor=date(2026, 11, 2))


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)  # type: ignore[misc]


def test_the_anchor_starts_the_first_member_and_shifts_follow_in_order() -> None:
    assert rotation_shift(WEEKLY, BERLIN, berlin(2026, 11, 2, 9)).user == "U0A"
    assert rotation_shift(WEEKLY, BERLIN, berlin(2026, 11, 9, 8, 59)).user == "U0A"
    shift = rotation_shift(WEEKLY, BERLIN, berlin(2026, 11, 9, 9))
    assert (shift.user, shift.starts_at) == ("U0B", berlin(2026, 11, 9, 9))
    assert shift.ends_at == berlin(2026, 11, 16, 9)
    assert rotation_shift(WEEKLY, BERLIN, berlin(2026, 11, 16, 9)).user == "U0C"
    assert rotation_shift(WEEKLY, BERLIN, berlin(2026, 11, 23, 9)).user == "U0A"
    # before the anchor the rotation runs backwards the same way
    assert rotation_shift(WEEKLY, BERLIN, berlin(2026, 11, 1, 12)).user == "U0C"


def test_handoffs_stay_at_local_time_across_dst() -> None:
    # the week containing 2026-10-25 (CEST -> CET) is 169 real hours long
    shift = rotation_shift(WEEKLY, BERLIN, berlin(2026, 10, 21, 12))
    assert shift.starts_at == berlin(2026, 10, 19, 9) and shift.ends_at == berlin(2026, 10, 26, 9)
    assert shift.ends_at - shift.starts_at == timedelta(hours=169)
    spring = rotation_shift(WEEKLY, BERLIN, berlin(2027, 3, 30, 12))
    assert spring.starts_at == berlin(2027, 3, 29, 9)
    assert spring.starts_at.astimezone(BERLIN).hour == 9


def test_daily_shifts_hand_over_at_the_handoff_time() -> None:
    daily = Rotation(rotation=["U0A", "U0B"], handoff="mon 08:00", length=timedelta(days=1),
                     anchor=date(2026, 11, 2))
    assert [rotation_shift(daily, BERLIN, berlin(2026, 11, d, 8)).user for d in (2, 3, 4)] == [
        "U0A", "U0B", "U0A"]
    assert rotation_shift(daily, BERLIN, berlin(2026, 11, 3, 7, 59)).user == "U0A"


def test_times_people_type() -> None:
    now = berlin(2026, 11, 23, 10)  # a Monday
    assert parse_moment("+4h", now, BERLIN) == now + timedelta(hours=4)
    assert parse_moment("90m", now, BERLIN) == now + timedelta(minutes=90)
    assert parse_moment("18:00", now, BERLIN) == berlin(2026, 11, 23, 18)
    assert parse_moment("09:00", now, BERLIN) == berlin(2026, 11, 24, 9)  # already past today
    assert parse_moment("2026-11-23 18:00", now, BERLIN) == berlin(2026, 11, 23, 18)
    assert parse_moment("wed 09:00", now, BERLIN) == berlin(2026, 11, 25, 9)
    for bad in ("soon", "25:00", "2026-13-01 10:00", "+0h"):
        with pytest.raises(InvalidInput, match="cannot read the time"):
            parse_moment(bad, now, BERLIN)


def test_an_override_wins_then_the_rotation_resumes(services: Core, clock: FakeClock) -> None:
    before = services.oncall.now_and_next("sre")[0]
    reply = services.commands.handle("/oncall", "override <@U0SRE1|sre1> until +4h", actor=COMMANDER)
    assert reply.text.startswith("<@U0SRE1> is on call for sre from ")
    now, after = services.oncall.now_and_next("sre")
    assert (now.user, now.override, now.ends_at) == ("U0SRE1", True, clock.now() + timedelta(hours=4))
    assert after.user == before.user  # back to the rotation when the override ends
    clock.advance(hours=4)
    assert services.oncall.now_and_next("sre")[0].user == before.user
    assert audit_actions(services, "oncall.") == ["oncall.override"]


def test_a_future_override_cuts_the_current_shift_short(services: Core, clock: FakeClock) -> None:
    current = services.oncall.now_and_next("sre")[0]
    services.oncall.override(actor=COMMANDER, team="sre", who="U0SUB", since="+1h", until="+3h")
    now, following = services.oncall.now_and_next("sre")
    assert (now.user, now.ends_at) == (current.user, clock.now() + timedelta(hours=1))
    assert (following.user, following.override) == ("U0SUB", True)


def test_escalation_pages_whoever_the_override_puts_on_call(services: Core, clock: FakeClock) -> None:
    services.oncall.override(actor=COMMANDER, team="sre", who="U0SUB", until="+1h")
    with services.db.transaction() as s:
        assert services.sla.escalations.resolve(s, ["oncall:sre"], clock.now()) == ["U0SUB"]


def test_only_commanders_and_admins_override(services: Core) -> None:
    with pytest.raises(PermissionDenied, match="commander or admin"):
        services.commands.handle("/oncall", "override @U0SRE1 until 18:00", actor=RESPONDER)
    assert audit_actions(services, "permission.denied") == ["permission.denied"]
    with pytest.raises(InvalidInput, match="end before it starts"):
        services.oncall.override(actor=COMMANDER, team="sre", who="U0SUB", since="+2h", until="+1h")
    with pytest.raises(UsageError, match="usage"):
        services.commands.handle("/oncall", "override until 18:00", actor=COMMANDER)
    assert services.oncall.now_and_next("sre")[0].override is False


def test_oncall_says_who_is_on_now_and_next(services: Core, clock: FakeClock) -> None:
    # the sample rotation: U0RESP1, U0RESP2 weekly from mon 09:00 Berlin, anchored 2024-01-01
    clock.current = berlin(2026, 11, 23, 10)
    weeks = (clock.current - berlin(2024, 1, 1, 9)) // timedelta(weeks=1)
    on, off = ("U0RESP1", "U0RESP2") if weeks % 2 == 0 else ("U0RESP2", "U0RESP1")
    text = services.commands.handle("/oncall", "", actor="U0ANYONE").text
    assert text == (f"*sre*: <@{on}> is on call until Mon 2026-11-30 09:00 CET; "
                    f"next: <@{off}> until Mon 2026-12-07 09:00 CET")
    assert services.commands.handle("/oncall", "sre", actor="U0ANYONE").text == text
    assert "override" in services.commands.handle("/oncall", "help", actor="U0ANYONE").text
