"""Who is on call: rotations from the policy file, and overrides people set.

A rotation hands over at `handoff` (e.g. `mon 09:00`) every `length`, in its
own time zone (or the policy's). Shifts are counted in local wall time, so a
weekly handoff stays at 09:00 across DST changes. The anchor is the first
handoff on or after the rotation's `anchor` date (2024-01-01 if not given):
the first member's shift starts there, the second member's one `length`
later, and so on, in both directions of time.

A team may instead be fed by an iCalendar file (`ical:`, see opsloop.feeds):
its shifts come from the feed, and a stretch no event covers is a gap with
nobody on call.

An override puts someone else on call for a team from a start to an end; the
newest override covering a moment wins over older ones and over the rotation
or feed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from opsloop import audit, outbox
from opsloop.durations import parse_duration
from opsloop.errors import InvalidInput, NotFound
from opsloop.feeds.service import Feeds
from opsloop.messages import Message, user
from opsloop.oncall_models import OnCallOverride
from opsloop.outbox import CHAT
from opsloop.policy import Rotation
from opsloop.service import Service

log = logging.getLogger(__name__)

EPOCH = date(2024, 1, 1)
MAX_OVERRIDE = timedelta(days=90)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Shift:
    user: str | None  # None: a gap in the team's iCal feed, nobody on call
    starts_at: datetime  # UTC
    ends_at: datetime  # UTC: when the next person takes over
    override: bool = False


def _local(naive: datetime, zone: ZoneInfo) -> datetime:
    return naive.replace(tzinfo=zone).astimezone(UTC)


def rotation_shift(rotation: Rotation, zone: ZoneInfo, at: datetime) -> Shift:
    """The rotation's shift (without overrides) that contains `at`."""
    day, _, clock_time = rotation.handoff.strip().partition(" ")
    hours, minutes = (int(part) for part in clock_time.split(":"))
    anchor_day = rotation.anchor or EPOCH
    anchor_day += timedelta(days=(_WEEKDAYS.index(day.lower()) - anchor_day.weekday()) % 7)
    anchor = datetime.combine(anchor_day, time(hours, minutes))
    local = at.astimezone(zone).replace(tzinfo=None)
    number = (local - anchor) // rotation.length
    start = anchor + number * rotation.length
    return Shift(rotation.rotation[number % len(rotation.rotation)], _local(start, zone),
                 _local(start + rotation.length, zone))


def parse_moment(text: str, now: datetime, zone: ZoneInfo) -> datetime:
    """`now`, `+4h` / `4h`, `18:00` (the next one), `mon 09:00` (the next one), `2026-11-23 18:00` (local)."""
    words = text.strip().lower().split()
    if words == ["now"]:
        return now
    try:
        if len(words) == 1 and re.fullmatch(r"\+?(\d+[smhdw])+", words[0]):
            return now + parse_duration(words[0].lstrip("+"))
        local_now = now.astimezone(zone).replace(tzinfo=None)
        if len(words) == 1 and re.fullmatch(r"\d{1,2}:\d{2}", words[0]):
            moment = datetime.combine(local_now.date(), _time(words[0]))
            if moment <= local_now:
                moment += timedelta(days=1)
            return _local(moment, zone)
        if len(words) == 2 and words[0][:3] in _WEEKDAYS:
            ahead = (_WEEKDAYS.index(words[0][:3]) - local_now.weekday()) % 7
            moment = datetime.combine(local_now.date() + timedelta(days=ahead), _time(words[1]))
            if moment <= local_now:
                moment += timedelta(days=7)
            return _local(moment, zone)
        if 1 <= len(words) <= 2 and re.fullmatch(r"\d{4}-\d{2}-\d{2}", words[0]):
            at = _time(words[1]) if len(words) == 2 else time(0)
            return _local(datetime.combine(date.fromisoformat(words[0]), at), zone)
    except ValueError:
        pass
    raise InvalidInput(f"cannot read the time {text!r}: write e.g. now, +4h, 18:00, mon 09:00 or "
                       "2026-11-23 18:00 (local time)")


def _time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


@dataclass(eq=False)
class OnCall(Service):
    feeds: Feeds = field(init=False)

    def __post_init__(self) -> None:
        self.feeds = Feeds(self.db, self.policy, self.clock)

    @property
    def teams(self) -> list[str]:
        return list(self.policy.oncall)

    def zone(self, team: str) -> ZoneInfo:
        return ZoneInfo(self.rotation(team).timezone or self.policy.timezone)

    def rotation(self, team: str) -> Rotation:
        rotation = self.policy.oncall.get(team)
        if rotation is None:
            known = ", ".join(self.policy.oncall) or "none defined"
            raise NotFound(f"no on-call team {team!r} (teams: {known})")
        return rotation

    # ------------------------------------------------------------------ who

    def shift(self, session: Session, team: str, at: datetime) -> Shift:
        """Who is on call for `team` at `at`, and until when."""
        base = self._scheduled(session, team, at)
        live = (col(OnCallOverride.team) == team, col(OnCallOverride.cancelled_at).is_(None))
        covering = session.exec(
            select(OnCallOverride).where(*live, col(OnCallOverride.starts_at) <= at,
                                         col(OnCallOverride.ends_at) > at)
            .order_by(col(OnCallOverride.id).desc())
        ).first()
        if covering is not None:
            return Shift(covering.user, covering.starts_at, covering.ends_at, override=True)
        interrupting = session.exec(
            select(OnCallOverride.starts_at).where(*live, col(OnCallOverride.starts_at) > at,
                                                   col(OnCallOverride.starts_at) < base.ends_at)
            .order_by(col(OnCallOverride.starts_at))
        ).first()
        if interrupting is not None:
            return Shift(base.user, base.starts_at, interrupting)
        return base

    def _scheduled(self, session: Session, team: str, at: datetime) -> Shift:
        """The rotation's or the feed's shift at `at`, before overrides."""
        rotation = self.rotation(team)
        if rotation.ical is None:
            return rotation_shift(rotation, self.zone(team), at)
        who, starts, ends = self.feeds.shift(session, team, at)
        return Shift(who, starts, ends)

    def now_and_next(self, team: str) -> tuple[Shift, Shift]:
        now = self.clock.now()
        with self.db.transaction() as session:
            current = self.shift(session, team, now)
            return current, self.shift(session, team, current.ends_at)

    def on_call(self, session: Session, team: str, at: datetime) -> str | None:
        """Who to page for `team` now; None when nobody is (a gap, or a feed not loaded yet)."""
        try:
            return self.shift(session, team, at).user
        except NotFound as error:
            log.warning("nobody on call for %s: %s", team, error)
            return None

    # ------------------------------------------------------------------ overrides

    def override(
        self, *, actor: str, team: str, who: str, until: str, since: str | None = None
    ) -> OnCallOverride:
        """Put `who` on call for `team` from now (or `since`) until `until` (local time of the team)."""
        self.rotation(team)
        now = self.clock.now()
        self.authz.require(actor, "oncall.override", subject=f"oncall:{team}", doing="override on-call")
        zone = self.zone(team)
        starts = parse_moment(since, now, zone) if since else now
        ends = parse_moment(until, now, zone)
        if ends <= max(starts, now):
            raise InvalidInput("the override would end before it starts; give a later `until`")
        if ends - starts > MAX_OVERRIDE:
            raise InvalidInput("an override lasts at most 90 days; change the rotation for longer")
        with self.db.transaction() as session:
            row = OnCallOverride(team=team, user=who, starts_at=starts, ends_at=ends,
                                 created_by=actor, created_at=now)
            session.add(row)
            session.flush()
            audit.record(session, at=now, actor=actor, action="oncall.override", subject=f"oncall:{team}",
                         after={"id": row.id, "user": who, "starts_at": starts, "ends_at": ends})
            when = f"from {self.local(team, starts)} until {self.local(team, ends)}"
            outbox.enqueue(session, transport=CHAT, target=who, now=now, payload={"message": Message(
                text=f"You are on call for {team} {when} (override by {user(actor)}).").to_json()})
        return row

    def local(self, team: str, moment: datetime) -> str:
        return moment.astimezone(self.zone(team)).strftime("%a %Y-%m-%d %H:%M %Z")
