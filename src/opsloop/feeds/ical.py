"""Who an iCalendar (RFC 5545) on-call feed puts on call, as shifts in UTC.

PagerDuty and Grafana OnCall both publish schedules as iCal feeds. Each event
is a stretch of on-call; recurring events (`RRULE`, `RDATE`, `EXDATE`) are
expanded by `recurring_ical_events`, in the event's own time zone (so a weekly
09:00 handoff stays at 09:00 local across a DST change). Times without a zone
and all-day dates are read in the team's time zone.

An event names its person in `ATTENDEE` (`mailto:` an email, `CN=` a name) or
in `SUMMARY`: a Slack user id (`U0ABC123` or `<@U0ABC123>`), an email, or a
name, also inside PagerDuty's "On Call - Jane Doe - Primary" or Grafana
OnCall's "[L1] jane". Emails and names are mapped to Slack ids by the caller
(`Resolve`); a person nobody could map stays unmapped, and pages no one.

When events overlap, the one that started last wins (an override laid over a
week-long shift starts inside it), and a tie goes to the later event in the
file. Consecutive stretches of the same person are one shift.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

SLACK_ID = re.compile(r"^<?@?([UW][A-Z0-9]{6,})>?$")
EMAIL = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+\.[A-Za-z]{2,}")
LEVEL = re.compile(r"^\s*\[[^\]]*\]\s*")  # Grafana OnCall's "[L1] " before the name

# A person as the feed writes them -> a Slack user id, or None when nobody could map them.
Resolve = Callable[[list[str]], str | None]


class FeedError(ValueError):
    """The file is not an iCalendar feed opsloop can read; the message says why."""


@dataclass(frozen=True)
class Segment:
    starts_at: datetime  # UTC
    ends_at: datetime  # UTC
    user: str | None  # the Slack id, or None: nobody could map the person
    written: str  # who the feed names (for messages about unmapped people)


def parse(text: str) -> icalendar.Calendar:
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except (ValueError, KeyError, IndexError) as error:
        raise FeedError(f"not an iCalendar feed: {error}") from None
    if not isinstance(calendar, icalendar.Calendar) or calendar.name != "VCALENDAR":
        raise FeedError("not an iCalendar feed: no VCALENDAR")
    if not calendar.walk("VEVENT"):
        raise FeedError("the feed has no events (VEVENT)")
    return calendar


def candidates(event: Any) -> list[str]:
    """The ways the event names its person, most precise first (ids, emails, names)."""
    found: list[str] = []
    attendees = event.get("ATTENDEE")
    for attendee in attendees if isinstance(attendees, list) else [attendees] if attendees else []:
        value = str(attendee)
        if value.lower().startswith("mailto:"):
            found.append(value[7:].strip())
        name = attendee.params.get("CN") if hasattr(attendee, "params") else None
        if name:
            found.append(str(name).strip())
    summary = " ".join(str(event.get("SUMMARY") or "").split())
    ids = [m.group(1) for m in map(SLACK_ID.match, re.split(r"[\s,;]+", summary)) if m]
    found = ids + found
    found += EMAIL.findall(summary)
    plain = LEVEL.sub("", summary)
    found += [plain, *(part.strip() for part in plain.split(" - ") if part.strip())]
    unique: dict[str, str] = {}
    for name in found:
        if name:
            unique.setdefault(name.lower(), name)
    return list(unique.values())


def _moment(value: Any, zone: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), zone).astimezone(UTC)
    raise FeedError(f"an event's time cannot be read: {value!r}")


PERIODS = {"SECONDLY": 1, "MINUTELY": 60, "HOURLY": 3600, "DAILY": 86400, "WEEKLY": 604800,
           "MONTHLY": 28 * 86400, "YEARLY": 365 * 86400}
MULTIPLYING = ("BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH")


def _most(calendar: icalendar.Calendar, window: timedelta) -> int:
    """At most how many occurrences the events can have in `window` (an over-estimate: every BY part
    multiplies), so a runaway rule is refused before anything is expanded."""
    total = 0
    for event in calendar.walk("VEVENT"):
        rules = event.get("RRULE")
        total += 1 + len(event.get("RDATE") or [])
        for rule in rules if isinstance(rules, list) else [rules] if rules else []:
            freq = str((rule.get("FREQ") or ["YEARLY"])[0]).upper()
            interval = max(int((rule.get("INTERVAL") or [1])[0]), 1)
            count = window.total_seconds() // (PERIODS.get(freq, 1) * interval) + 1
            for part in MULTIPLYING:
                count *= max(len(rule.get(part) or []), 1)
            total += int(count)
    return total


def occurrences(calendar: icalendar.Calendar, zone: ZoneInfo, since: datetime, until: datetime,
                resolve: Resolve) -> list[Segment]:
    """Every stretch of on-call overlapping [since, until), in file order within equal starts."""
    order = {id(e): n for n, e in enumerate(calendar.walk("VEVENT"))}
    found: list[tuple[datetime, int, Segment]] = []
    most = _most(calendar, until - since)
    if most > MAX_OCCURRENCES:  # checked before expanding: FREQ=SECONDLY would never finish
        raise FeedError(f"up to {most:,} shifts in {(until - since).days} days "
                        f"(at most {MAX_OCCURRENCES:,}); is a rule repeating every minute or second?")
    try:
        expanded = recurring_ical_events.of(calendar).between(since, until)
    except Exception as error:  # the library raises its own types for bad recurrence rules
        raise FeedError(f"a recurring event cannot be expanded: {error}") from None
    for event in expanded:
        start = _moment(event.get("DTSTART").dt, zone)
        end_value = event.get("DTEND")
        end = _moment(end_value.dt, zone) if end_value is not None else start
        if end <= start:
            continue  # an instant is nobody's shift
        names = candidates(event)
        segment = Segment(start, end, resolve(names), names[0] if names else "(nobody named)")
        found.append((start, order.get(id(event), len(order)), segment))
    return [segment for _, _, segment in sorted(found, key=lambda f: (f[0], f[1]))]


def shifts(stretches: list[Segment]) -> list[Segment]:
    """Non-overlapping shifts: where events overlap, the one that started last wins."""
    bounds = sorted({s.starts_at for s in stretches} | {s.ends_at for s in stretches})
    out: list[Segment] = []
    active: list[tuple[int, Segment]] = []
    upcoming = sorted(enumerate(stretches), key=lambda p: p[1].starts_at)
    i = 0
    for left, right in pairwise(bounds):
        while i < len(upcoming) and upcoming[i][1].starts_at <= left:
            active.append(upcoming[i])
            i += 1
        active = [(n, s) for n, s in active if s.ends_at > left]
        if not active:
            continue
        _, winner = max(active, key=lambda p: (p[1].starts_at, p[0]))
        last = out[-1] if out else None
        same = last is not None and (last.user, last.written) == (winner.user, winner.written)
        if last is not None and same and last.ends_at == left:
            out[-1] = Segment(last.starts_at, right, last.user, last.written)
        else:
            out.append(Segment(left, right, winner.user, winner.written))
    return out


@dataclass(frozen=True)
class Timeline:
    """A feed's shifts over a window, for answering "who is on call at t" by bisection."""

    since: datetime
    until: datetime
    segments: list[Segment]

    def at(self, moment: datetime) -> tuple[Segment | None, datetime, datetime]:
        """The shift covering `moment` (None in a gap), and the gap's or shift's bounds."""
        starts = [s.starts_at for s in self.segments]
        i = bisect_right(starts, moment) - 1
        if i >= 0 and self.segments[i].ends_at > moment:
            seg = self.segments[i]
            return seg, seg.starts_at, seg.ends_at
        gap_start = self.segments[i].ends_at if i >= 0 else self.since
        gap_end = self.segments[i + 1].starts_at if i + 1 < len(self.segments) else self.until
        return None, gap_start, gap_end


def timeline(calendar: icalendar.Calendar, zone: ZoneInfo, since: datetime, until: datetime,
             resolve: Resolve) -> Timeline:
    return Timeline(since, until, shifts(occurrences(calendar, zone, since, until, resolve)))


MAX_OCCURRENCES = 5000  # shifts in one window: hundreds in a real feed; more is a runaway rule
HORIZON = timedelta(days=400)  # how far ahead a feed is expanded (and checked for unmapped people)
LOOKBACK = timedelta(days=45)  # and how far back (a shift that started before now)
