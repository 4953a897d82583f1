"""The digest service: build the day's digest, post it on demand, and post the scheduled one once a day.

Exactly once per day, however many replicas run the scheduler: `run_due`
posts only after claiming the local day with a `DigestRun` row (the day is
its primary key) in the same transaction as the outbox messages and the
audit event. The claim takes the audit chain's head first, the lock order of
every writer, so concurrent claimers queue there and the later one finds the
day taken; the primary key holds it even without that. `run_due` posts
today's digest once today's time has come, so the scheduler calls it at the
configured time and once at start-up: a restart that straddled the time
catches up, a second call (or a second replica) finds the day claimed.

The figures are for the previous local day and the seven days ending with it,
so a digest built at 08:00 or caught up at 11:00 says the same thing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from opsloop import audit, outbox
from opsloop.digest import figures
from opsloop.digest.chart import mttr_chart
from opsloop.digest.control import Control, Point, individuals
from opsloop.digest.figures import Figures
from opsloop.digest.models import DigestRun
from opsloop.errors import InvalidInput
from opsloop.messages import File, Message
from opsloop.outbox import CHAT
from opsloop.policy import Policy
from opsloop.scheduled import safely
from opsloop.service import Service
from opsloop.types import OPSLOOP, Kind, Severity

log = logging.getLogger(__name__)

TRAILING_WEEKS = 4  # the XmR limits come from these weeks before this week
ACTION = "digest.post"


@dataclass(frozen=True)
class Digest:
    """The day's digest as data: the figures, the control chart's judgement and the series it draws
    (`opsloop.present.digest` words it)."""

    day: date  # the reported local day
    built_at: datetime
    zone: str
    figures: Figures
    control: Control
    by_severity: dict[str, list[Point]]  # daily incident MTTR per severity over the charted weeks
    targets: dict[str, float]  # each severity's incident resolution target (SLA policy), seconds
    first_day: date  # the chart's first day (the trailing weeks start here)
    as_of: datetime  # what is "open" or "at risk" is as of this moment (the day's end, for a past day)


def resolution_targets(policy: Policy) -> dict[str, float]:
    """Each severity's incident resolution target, in seconds: the first SLA policy that holds
    every incident of that severity (no tier or label condition) and sets one."""
    targets: dict[str, float] = {}
    for severity in Severity:
        for entry in policy.sla.policies:
            m = entry.match
            if m.tier is not None or m.labels or m.kind not in (None, Kind.INCIDENT) \
                    or m.severity not in (None, severity):
                continue
            if entry.targets.resolution is not None:
                targets[severity.value] = entry.targets.resolution.total_seconds()
            break
    return targets


@dataclass(eq=False)
class Digests(Service):
    message: Callable[[Digest], Message]  # the digest as it is posted (opsloop.present.digest.message)
    # draws the chart (a server draws it in a child process: opsloop.digest.chart.drawn_apart)
    draw: Callable[..., bytes] = mttr_chart
    zone: ZoneInfo = field(init=False)

    def __post_init__(self) -> None:
        self.zone = ZoneInfo(self.policy.timezone)

    # ------------------------------------------------------------------ building

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.zone)

    def build(self, now: datetime | None = None, *, day: date | None = None) -> Digest:
        """The digest as of `now`: yesterday (local), the week ending with it, and the XmR verdict.

        With `day`, the digest of that past local day, as it would have been built at its end:
        open items, at-risk accounts and open loops as they stood then."""
        built = self.clock.now()
        if day is not None:
            today = day + timedelta(days=1)
            if self._midnight(today) > built:
                latest = (built.astimezone(self.zone).date() - timedelta(days=1)).isoformat()
                raise InvalidInput(f"{day.isoformat()} is not over yet: "
                                   f"the latest day with a digest is {latest}")
            now = self._midnight(today)
        now = now or built
        today = now.astimezone(self.zone).date()
        window = figures.Window(week_start=self._midnight(today - timedelta(days=7)),
                                day_start=self._midnight(today - timedelta(days=1)),
                                until=self._midnight(today))
        first = today - timedelta(days=7 * (TRAILING_WEEKS + 1))
        days = [(first + timedelta(days=i), self._midnight(first + timedelta(days=i)),
                 self._midnight(first + timedelta(days=i + 1))) for i in range(7 * (TRAILING_WEEKS + 1))]
        with self.db.transaction() as session:  # one snapshot for every figure
            found = figures.gather(session, window, now=now, status=self.policy.status)
            by_severity = figures.daily_mttr(session, days)
            since = figures.history_since(session)
        week_start = today - timedelta(days=7)
        points = figures.pooled(by_severity)
        control = individuals([p for p in points if p.day < week_start],
                              [p for p in points if p.day >= week_start],
                              history_from=since.astimezone(self.zone).date() if since else None,
                              needed_from=first)
        return Digest(day=today - timedelta(days=1), built_at=built, as_of=now, zone=self.policy.timezone,
                      figures=found, control=control, by_severity=by_severity,
                      targets=resolution_targets(self.policy), first_day=first)

    def chart(self, digest: Digest) -> bytes:
        return self.draw(digest.control, digest.by_severity, targets=digest.targets, first=digest.first_day,
                         last=digest.day)

    # ------------------------------------------------------------------ posting

    def post(self, *, actor: str) -> str:
        """Post the digest now (leaders and admins); returns the channel id it goes to."""
        self.authz.require(actor, ACTION, subject="digest", doing="post the digest")
        channel = self._channel()
        digest = self.build()
        png = self.chart(digest)
        with self.db.transaction() as session:
            audit.lock_chain(session)
            key = f"digest:{digest.day.isoformat()}:{uuid.uuid4().hex[:12]}"
            self._enqueue(session, digest, png, key=key, actor=actor, scheduled=False)
        return channel

    def run_due(self, now: datetime | None = None) -> bool:
        """Post today's scheduled digest if its time has come and no one posted it yet."""
        config = self.policy.digest
        if config is None:
            return False
        now = now or self.clock.now()
        local = now.astimezone(self.zone)
        today = local.date()
        if today.weekday() not in config.days:
            return False
        if local < datetime.combine(today, config.at, self.zone):
            return False
        if self._claimed(today):  # cheap, before building anything
            return False
        digest = self.build(now)
        png = self.chart(digest)
        try:
            with self.db.transaction() as session:
                audit.lock_chain(session)  # claimers queue here (see the module docstring)
                if session.get(DigestRun, today) is not None:
                    return False
                key = f"digest:{today.isoformat()}"
                session.add(DigestRun(day=today, posted_at=now, reported_day=digest.day, message_key=key))
                session.flush()
                self._enqueue(session, digest, png, key=key, actor=OPSLOOP, scheduled=True)
        except IntegrityError:  # another replica claimed the day between our check and insert
            return False
        log.info("posted the digest of %s", digest.day)
        return True

    def run_safely(self) -> bool:
        """`run_due` for a scheduler job: errors are logged, never raised into the scheduler."""
        return safely(self.run_due, failed=False, log=log,
                      message="the scheduled digest failed; the next start-up or scheduled run retries")

    def _claimed(self, day: date) -> bool:
        with self.db.transaction() as session:
            return session.get(DigestRun, day) is not None

    def _channel(self) -> str:
        config = self.policy.digest
        if config is None:
            raise InvalidInput("no digest is configured: add `digest: {at, days, channel}` to the policy")
        return self.policy.channel(config.channel)

    def _enqueue(self, session: Session, digest: Digest, png: bytes, *, key: str, actor: str,
                 scheduled: bool) -> None:
        channel = self._channel()
        now = self.clock.now()
        outbox.enqueue(session, transport=CHAT, target=channel, now=now, key=key,
                       payload={"message": self.message(digest).to_json()})
        # the PNG travels in the payload (base64, ~40 kB): the thread shows the chart of exactly the
        # figures posted, however late the upload happens, and the sender needs no database
        chart = File(filename=f"mttr-{digest.day.isoformat()}.png",
                     title=f"Daily incident MTTR to {digest.day.isoformat()}", content=png)
        outbox.enqueue(session, transport=CHAT, target=channel, now=now, key=f"{key}:chart", thread_key=key,
                       payload=chart.to_payload())
        audit.record(session, at=now, actor=actor, action="digest.posted", subject=f"digest:{digest.day}",
                     after={"channel": channel, "scheduled": scheduled, "key": key,
                            "in_control": digest.control.in_control})
