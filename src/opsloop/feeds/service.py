"""Loading each `oncall.TEAM.ical` feed into the database, and answering who it puts on call.

A feed is read from its file at start and by `opsloop oncall refresh`, and
stored (content, hash, and how its people map to Slack) so every replica
answers from the same schedule, and a refresh from the command line reaches
running bots: they compare the stored hash on each question and re-read only
when it changed.

Nothing pages a person on a guess: loading refuses a feed in which someone on
call from now on cannot be mapped to a Slack user (by id, `users.csv`, an
earlier load, or the directory's lookup by email), naming them and their first
shift. At start, a changed feed that cannot be loaded leaves the last loaded
one in place (with a warning); with none loaded yet, start is refused.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.errors import ConfigError, NotFound
from opsloop.feeds import ical
from opsloop.feeds.models import OnCallFeed
from opsloop.policy import Policy

log = logging.getLogger(__name__)

MAX_BYTES = 5 * 1024 * 1024  # larger than any real schedule export; refused before parsing
LookupEmail = Callable[[str], str | None]  # the directory's users.lookupByEmail


@dataclass(frozen=True)
class Loaded:
    team: str
    changed: bool  # False: the stored feed was already this file
    shifts: int  # shifts from now to the horizon
    people: int  # distinct people mapped


def resolver(known: Mapping[str, str], lookup: LookupEmail | None = None,
             learned: dict[str, str] | None = None) -> ical.Resolve:
    """The first of an event's names that maps to a Slack id: an id as written, a known email or name
    (lower case), or an email the directory finds. What was mapped by email or name goes in `learned`."""
    cache: dict[str, str | None] = dict(known)  # a failed lookup is not asked again

    def resolve(names: list[str]) -> str | None:
        for name in names:
            match = ical.SLACK_ID.match(name)
            if match:
                return match.group(1)
            found = cache.get(name.lower())
            if name.lower() not in cache and lookup is not None and ical.EMAIL.fullmatch(name):
                found = cache[name.lower()] = lookup(name)
            if found is not None:
                if learned is not None:
                    learned[name.lower()] = found
                return found
        return None

    return resolve


class Feeds:
    def __init__(self, db: Database, policy: Policy, clock: Clock) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, ical.Timeline]] = {}  # team -> (sha256, expanded window)

    @property
    def teams(self) -> list[str]:
        return [team for team, rotation in self.policy.oncall.items() if rotation.ical]

    def path(self, team: str) -> Path:
        source = self.policy.oncall[team].ical
        assert source is not None
        return self.policy.path_of(source)

    def zone(self, team: str) -> ZoneInfo:
        return ZoneInfo(self.policy.oncall[team].timezone or self.policy.timezone)

    # ------------------------------------------------------------------ loading

    def load(self, team: str, *, actor: str, users: Mapping[str, str] | None = None,
             lookup: LookupEmail | None = None) -> Loaded:
        """Read the team's file, map its people, and store it; ConfigError says what stops it."""
        where = f"oncall.{team}.ical ({self.path(team)})"
        text = self._read(team, where)
        digest = hashlib.sha256(text.encode()).hexdigest()
        now = self.clock.now()
        with self.db.transaction() as session:
            stored = session.get(OnCallFeed, team)
        known = {**(stored.people if stored else {}), **{k.lower(): v for k, v in (users or {}).items()}}
        people: dict[str, str] = {}  # what this feed's people map to, kept for the next start
        try:
            calendar = ical.parse(text)
            shifts = ical.timeline(calendar, self.zone(team), now - ical.LOOKBACK, now + ical.HORIZON,
                                   resolver(known, lookup, people)).segments
        except ical.FeedError as error:
            raise ConfigError(f"{where}: {error}") from None
        ahead = [s for s in shifts if s.ends_at > now]
        unmapped: dict[str, datetime] = {}
        for shift in ahead:
            if shift.user is None:
                unmapped.setdefault(shift.written, shift.starts_at)
        if unmapped:
            lines = [f"  {who!r}, on call from {self.local(team, at)}" for who, at in unmapped.items()]
            raise ConfigError(f"{where}: {len(unmapped)} person(s) on call from now on cannot be mapped to a "
                              "Slack user; add them to users.csv (email,slack_id[,name]) and run "
                              "`opsloop oncall refresh --users users.csv`:\n" + "\n".join(lines))
        changed = stored is None or stored.sha256 != digest or stored.people != people
        if changed:
            with self.db.transaction() as session:
                audit.lock_chain(session)  # the lock order every writer keeps (see opsloop.audit)
                row = session.get(OnCallFeed, team, with_for_update=True)
                row = row or OnCallFeed(team=team, source="", sha256="", content="", loaded_at=now,
                                        loaded_by=actor)
                row.source, row.sha256, row.content, row.people = str(self.path(team)), digest, text, people
                row.loaded_at, row.loaded_by = now, actor
                session.add(row)
                audit.record(session, at=now, actor=actor, action="oncall.feed.loaded",
                             subject=f"oncall:{team}",
                             after={"source": row.source, "sha256": digest, "shifts": len(ahead),
                                    "people": sorted(set(people.values()))})
        return Loaded(team, changed, len(ahead), len({s.user for s in ahead}))

    def _read(self, team: str, where: str) -> str:
        path = self.path(team)
        try:
            if path.stat().st_size > MAX_BYTES:
                raise ConfigError(f"{where}: larger than {MAX_BYTES // (1024 * 1024)} MiB")
            return path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"{where}: cannot read: {error.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: not UTF-8 text") from None

    def load_on_start(self, *, actor: str) -> None:
        """Load each feed whose file changed since it was stored; keep the last good one if it cannot be."""
        for team in self.teams:
            with self.db.transaction() as session:
                stored = session.get(OnCallFeed, team)
            try:
                if stored is not None and stored.sha256 == hashlib.sha256(
                        self._read(team, f"oncall.{team}.ical").encode()).hexdigest():
                    continue  # the file is what every replica already answers from
                self.load(team, actor=actor)
            except ConfigError as error:
                if stored is None:
                    raise
                log.warning("%s\nkeeping the feed loaded %s", error, stored.loaded_at.isoformat())

    # ------------------------------------------------------------------ asking

    def shift(self, session: Session, team: str, at: datetime) -> tuple[str | None, datetime, datetime]:
        """(who is on call at `at`, or None in a gap; from when; until when) from the stored feed."""
        row = session.exec(select(OnCallFeed.sha256).where(col(OnCallFeed.team) == team)).first()
        if row is None:
            raise NotFound(f"no schedule is loaded for {team} yet: run `opsloop oncall refresh`")
        with self._lock:
            cached = self._cache.get(team)
        if cached is None or cached[0] != row or not (cached[1].since + ical.LOOKBACK / 2 <= at
                                                      <= cached[1].until - ical.HORIZON / 2):
            feed = session.get(OnCallFeed, team)
            assert feed is not None
            try:
                expanded = ical.timeline(ical.parse(feed.content), self.zone(team), at - ical.LOOKBACK,
                                         at + ical.HORIZON, resolver(feed.people))
            except ical.FeedError as error:  # it was read once; only a changed library could fail here
                raise NotFound(f"the schedule of {team} cannot be read: {error}") from None
            cached = (feed.sha256, expanded)
            with self._lock:
                self._cache[team] = cached
        segment, starts, ends = cached[1].at(at)
        return (segment.user if segment else None), starts, ends

    def local(self, team: str, moment: datetime) -> str:
        return moment.astimezone(self.zone(team)).strftime("%a %Y-%m-%d %H:%M %Z")
