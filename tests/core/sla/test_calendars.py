"""Working-time arithmetic across nights, weekends, holidays and DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from opsloop.sla.calendars import AlwaysOn, BusinessHours

BERLIN = ZoneInfo("Europe/Berlin")
BUSINESS = BusinessHours(days=frozenset(range(5)), opens=time(9), closes=time(17), zone=BERLIN,
                         holidays=frozenset({date(2026, 12, 25)}))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


def test_24x7_is_plain_time() -> None:
    start = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert AlwaysOn().add(start, timedelta(hours=3)) == start + timedelta(hours=3)
    assert AlwaysOn().elapsed(start, start - timedelta(1)) == timedelta(0)


def test_within_one_day() -> None:
    assert BUSINESS.add(local(2026, 11, 23, 10), timedelta(hours=2)) == local(2026, 11, 23, 12)
    assert BUSINESS.elapsed(local(2026, 11, 23, 10), local(2026, 11, 23, 12)) == timedelta(hours=2)


def test_across_a_night() -> None:
    # Monday 16:00 + 2h working = Tuesday 10:00
    assert BUSINESS.add(local(2026, 11, 23, 16), timedelta(hours=2)) == local(2026, 11, 24, 10)
    assert BUSINESS.elapsed(local(2026, 11, 23, 16), local(2026, 11, 24, 10)) == timedelta(hours=2)


def test_started_outside_hours_counts_from_the_next_opening() -> None:
    assert BUSINESS.add(local(2026, 11, 23, 20), timedelta(hours=1)) == local(2026, 11, 24, 10)
    assert BUSINESS.add(local(2026, 11, 23, 6), timedelta(hours=1)) == local(2026, 11, 23, 10)


def test_across_a_weekend() -> None:
    # Friday 2026-11-27 16:30 + 1h = Monday 09:30
    assert BUSINESS.add(local(2026, 11, 27, 16, 30), timedelta(hours=1)) == local(2026, 11, 30, 9, 30)
    assert BUSINESS.elapsed(local(2026, 11, 28, 9), local(2026, 11, 29, 17)) == timedelta(0)


def test_across_a_holiday() -> None:
    # Thursday 24 Dec 16:00 + 2h: Friday 25 Dec is a holiday, so Monday 28 Dec 10:00
    assert BUSINESS.add(local(2026, 12, 24, 16), timedelta(hours=2)) == local(2026, 12, 28, 10)


def test_exact_end_of_day_is_the_closing_time() -> None:
    assert BUSINESS.add(local(2026, 11, 23, 9), timedelta(hours=8)) == local(2026, 11, 23, 17)


def test_long_durations_are_working_hours() -> None:
    # 2d = 48 working hours = six 8-hour days: Mon 09:00 -> the next Monday 17:00
    assert BUSINESS.add(local(2026, 11, 23, 9), timedelta(days=2)) == local(2026, 11, 30, 17)


def test_autumn_dst_change_keeps_local_hours() -> None:
    # Europe/Berlin goes from CEST to CET on Sunday 2026-10-25. Friday 16:00 CEST + 2h
    # working ends Monday 10:00 CET, which is 65 real hours later (the night had 25 hours).
    start, due = local(2026, 10, 23, 16), BUSINESS.add(local(2026, 10, 23, 16), timedelta(hours=2))
    assert due == local(2026, 10, 26, 10)
    assert due.astimezone(BERLIN).utcoffset() == timedelta(hours=1)
    assert start.utcoffset() == timedelta(hours=2)
    assert due.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=67)


def test_dst_changes_on_a_24x7_style_calendar_count_real_time() -> None:
    # a calendar working around the clock on Sundays: the change days have 25 and 23 hours
    sundays = BusinessHours(days=frozenset({6}), opens=time(0), closes=time(23, 59), zone=BERLIN)
    assert sundays.elapsed(local(2026, 10, 25, 0), local(2026, 10, 25, 23, 59)) == timedelta(
        hours=24, minutes=59)
    assert sundays.elapsed(local(2027, 3, 28, 0), local(2027, 3, 28, 23, 59)) == timedelta(
        hours=22, minutes=59)


def test_spring_dst_change_keeps_local_hours() -> None:
    # CET -> CEST on Sunday 2027-03-28: Friday 16:00 CET + 2h -> Monday 10:00 CEST
    due = BUSINESS.add(local(2027, 3, 26, 16), timedelta(hours=2))
    assert due == local(2027, 3, 29, 10)
    assert due.astimezone(BERLIN).utcoffset() == timedelta(hours=2)
    assert BUSINESS.elapsed(local(2027, 3, 26, 16), due) == timedelta(hours=2)


moments = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1),
                       timezones=st.just(UTC))
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3))


@settings(max_examples=200, deadline=None)
@given(start=moments, duration=durations)
def test_add_then_elapsed_round_trips(start: datetime, duration: timedelta) -> None:
    due = BUSINESS.add(start, duration)
    assert due >= start
    assert BUSINESS.elapsed(start, due) == duration


@settings(max_examples=200, deadline=None)
@given(start=moments, span=durations)
def test_elapsed_then_add_reaches_no_later_than_the_end(start: datetime, span: timedelta) -> None:
    end = start + span
    worked = BUSINESS.elapsed(start, end)
    assert worked <= span
    reached = BUSINESS.add(start, worked)
    assert reached <= end
    assert BUSINESS.elapsed(start, reached) == worked


@settings(max_examples=100, deadline=None)
@given(start=moments, a=durations, b=durations)
def test_elapsed_is_additive(start: datetime, a: timedelta, b: timedelta) -> None:
    middle, end = start + a, start + a + b
    assert BUSINESS.elapsed(start, end) == BUSINESS.elapsed(start, middle) + BUSINESS.elapsed(middle, end)
