"""The health service: recompute scores when their inputs change, prompt CSMs, answer look-ups.

Scores are recomputed in the transaction of whatever changed an input, so a
score never disagrees with what it was computed from:

- a work item touching tenants is created, gets tenants or changes state (`ItemCreated`, `ItemChanged`);
- an SLA target of such an item is breached (`ClockBreached`);
- signals arrive (`ingest`);
- every day at `health.daily_at` (a durable timer that re-arms itself), which
  also lets old incidents and signals age out of the window;
- a prompt's snooze runs out (a durable timer per snooze).

A score row is written when the score, band or rules changed, and by the
daily run; each is also the day's entry in the daily series (`opsloop.health.daily`),
whose last score per local day is what trends and the report read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlalchemy import select as sa_select  # sqlmodel's is typed for at most four columns
from sqlmodel import Session, col, func, select

from opsloop import audit
from opsloop.authz import describe
from opsloop.errors import InvalidInput, NotFound
from opsloop.events import ClockBreached, ItemChanged, ItemCreated
from opsloop.health import daily, prompts, report, signals
from opsloop.health.calibrate import Calibration, calibrate
from opsloop.health.config import HealthPolicy
from opsloop.health.inputs import gather
from opsloop.health.models import HealthPrompt, HealthScore, ScoreRow
from opsloop.health.playbooks import Playbooks
from opsloop.health.report import HealthReport
from opsloop.health.score import HEALTHY, AccountFacts, Assessment, assess
from opsloop.models import Account, WorkItemTenant
from opsloop.service import Service
from opsloop.status.availability import Availability, availability
from opsloop.timers.models import Timer
from opsloop.types import OPSLOOP

DAILY = "health.daily"


@dataclass
class Recomputed:
    assessments: dict[str, Assessment] = field(default_factory=dict)
    prompts: list[HealthPrompt] = field(default_factory=list)


@dataclass(frozen=True)
class Ingested:
    stored: int
    tenants: list[str]
    prompts: int  # prompts sent because of these signals


@dataclass
class AccountHealth:
    account: AccountFacts
    score: HealthScore
    assessment: Assessment
    days: list[daily.DayScore]  # the daily series of the last 90 days, oldest first
    prompt: HealthPrompt | None


@dataclass(eq=False)
class Health(Service):
    playbooks: Playbooks = field(kw_only=True)
    config: HealthPolicy = field(init=False)
    zone: ZoneInfo = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.policy.health
        self.zone = ZoneInfo(self.policy.timezone)

    # ------------------------------------------------------------------ recomputing

    def recompute_in(self, session: Session, tenants: Sequence[str] | None, *, cause: str,
                     now: datetime | None = None, force: bool = False) -> Recomputed:
        """Score `tenants` (None: every account) in the caller's transaction, which holds the audit
        chain; prompt CSMs where due. `force` writes a score row even where nothing changed.

        Written for the daily run over every account: rows are read as plain tuples and written
        with one multi-row INSERT each (scores, the daily series), and only the prompts that
        something happens to are loaded as objects."""
        now = now or self.clock.now()
        today = self.today(now)
        accounts = _accounts(session, tenants)
        ids = None if tenants is None else list(accounts)
        inputs = gather(session, list(accounts), now=now, window=self.config.window,
                        recent=self.config.recent, every=tenants is None)
        latest = latest_scores(session, ids)
        out = Recomputed()
        fresh: list[dict[str, Any]] = []
        for tenant, account in accounts.items():
            assessment = assess(inputs[tenant], account, self.config, today=today)
            out.assessments[tenant] = assessment
            previous = latest.get(tenant)
            if force or previous is None or _differs(previous, assessment):
                fresh.append({"tenant_id": tenant, "at": now, "score": assessment.score,
                              "band": assessment.band, "factors": assessment.to_json(),
                              "cause": cause[:64]})
        rows = _insert_scores(session, fresh)
        daily.upsert(session, [daily.row(t, now, self.zone, r.score, r.band, out.assessments[t].units)
                               for t, r in rows.items()])
        states = prompts.current_states(session, ids)
        acting = [t for t, a in out.assessments.items() if prompts.needs_look(a.band, states.get(t), now)]
        current = prompts.current_many(session, [t for t in acting if t in states], lock=True)
        for tenant, assessment in out.assessments.items():
            previous = latest.get(tenant)
            was = previous.band if previous is not None else HEALTHY
            if was != assessment.band:
                audit.record(session, at=now, actor=OPSLOOP, action="health.band",
                             subject=f"account:{tenant}",
                             before={"band": was, "score": previous.score if previous else None},
                             after={"band": assessment.band, "score": assessment.score,
                                    "reasons": assessment.reasons(), "cause": cause})
        for tenant in acting:
            row = rows.get(tenant) or latest[tenant]
            before = latest.get(tenant) if tenant in rows else None
            prompt = prompts.evaluate(session, accounts[tenant], out.assessments[tenant], row, before,
                                      current.get(tenant), self.config, self.playbooks, now=now, today=today)
            if prompt is not None:
                out.prompts.append(prompt)
        return out

    def recompute(self, tenants: Sequence[str], *, cause: str) -> Recomputed:
        with self.db.transaction() as session:
            audit.lock_chain(session)
            return self.recompute_in(session, tenants, cause=cause)

    def recompute_all_in(self, session: Session, *, cause: str, now: datetime | None = None) -> int:
        """Every account, with a score row each (the daily run: one row a day shows the trend)."""
        return len(self.recompute_in(session, None, cause=cause, now=now, force=True).assessments)

    def rescore_new_item(self, session: Session, event: ItemCreated) -> None:
        """A new item touching accounts rescores them (in the table after its card, so the card
        reaches the channel before any prompt it causes reaches a CSM)."""
        if event.tenants:
            self.recompute_in(session, event.tenants, cause=f"{event.item.ref} created", now=event.at)

    def rescore_item(self, session: Session, event: ItemChanged) -> None:
        """Rescore the item's tenants when it gets tenants or changes state."""
        if event.tenants and (event.action == "tenants" or event.before != event.after):
            self.recompute_in(session, event.tenants, cause=f"{event.item.ref} {event.action}", now=event.at)

    def after_breach(self, session: Session, event: ClockBreached) -> None:
        """A missed target rescores its item's tenants."""
        item = event.item
        tenants = list(session.exec(select(WorkItemTenant.tenant_id)
                                    .where(WorkItemTenant.work_item_id == item.id)))
        if tenants:
            self.recompute_in(session, tenants, cause=f"{item.ref} {event.target} breached", now=event.at)

    # ------------------------------------------------------------------ timers

    def schedule_daily(self) -> None:
        """Arm the daily recompute unless it is armed (safe with several replicas starting at once)."""
        with self.db.transaction() as session:
            audit.lock_chain(session)  # serialises replicas: one check-then-insert at a time
            armed = select(Timer.id).where(Timer.kind == DAILY, col(Timer.fired_at).is_(None))
            if session.exec(armed).first() is not None:
                return
            now = self.clock.now()
            session.add(Timer(kind=DAILY, due_at=self.next_daily(now), created_at=now, payload={}))

    def next_daily(self, now: datetime) -> datetime:
        local = now.astimezone(self.zone)
        at = datetime.combine(local.date(), self.config.daily_at, tzinfo=self.zone)
        if at <= local:
            at = datetime.combine(local.date() + timedelta(days=1), self.config.daily_at, tzinfo=self.zone)
        return at

    def on_daily(self, session: Session, timer: Timer, now: datetime) -> str:
        """The `health.daily` timer: every account rescored (once a local day), the timer armed again."""
        day = self.today(now)
        run = daily.claim(session, day, now=now)
        if run is None:
            outcome = f"skipped: {day.isoformat()} was recomputed already"
        else:
            run.accounts = self.recompute_all_in(session, cause="daily", now=now)
            outcome = f"recomputed {run.accounts} accounts"
        armed = session.exec(select(Timer.id).where(Timer.kind == DAILY, col(Timer.fired_at).is_(None),
                                                    Timer.id != timer.id)).first()
        if armed is None:
            session.add(Timer(kind=DAILY, due_at=self.next_daily(now), created_at=now, payload={}))
        return outcome

    def on_snooze_end(self, session: Session, timer: Timer, now: datetime) -> str:
        """The `health.snooze_end` timer: a snoozed prompt's account is looked at again."""
        prompt = session.get(HealthPrompt, int(timer.payload.get("prompt", 0)))
        if prompt is None or prompt.ended_at is not None or prompt.status != "snoozed":
            return "skipped: the prompt is no longer snoozed"
        if prompt.snoozed_until is not None and prompt.snoozed_until > now:
            return "skipped: snoozed again"
        self.recompute_in(session, [prompt.tenant_id], cause="snooze ended", now=now)
        return "fired"

    # ------------------------------------------------------------------ signals

    def ingest(self, raw: object, *, source: str) -> Ingested:
        """Validate and store signals (all or nothing), then rescore their tenants."""
        now = self.clock.now()
        parsed = signals.parse(raw, now=now)
        with self.db.transaction() as session:
            audit.lock_chain(session)
            tenants = signals.store(session, parsed, now=now, source=source)
            audit.record(session, at=now, actor=f"system:{source}", action="health.signals",
                         subject=f"integration:{source}",
                         after={"signals": len(parsed), "tenants": tenants[:50]})
            done = self.recompute_in(session, tenants, cause=f"signals from {source}", now=now)
        return Ingested(len(parsed), tenants, len(done.prompts))

    # ------------------------------------------------------------------ prompts

    def answer(self, *, actor: str, prompt_id: str, verb: str) -> tuple[HealthPrompt, str]:
        """Take, snooze or dismiss a prompt as `actor`; returns it and its account's name."""
        if not prompt_id.isdigit():
            raise InvalidInput(f"{prompt_id!r} is not a prompt id")
        with self.db.transaction() as session:
            found = session.get(HealthPrompt, int(prompt_id))
            account = session.get(Account, found.tenant_id) if found else None
        if found is None or account is None:
            raise NotFound(f"no health prompt {prompt_id}")
        self.authorize(actor, "health.respond", account, owners=(account.csm,))
        with self.db.transaction() as session:
            audit.lock_chain(session)
            prompt = session.get(HealthPrompt, int(prompt_id), with_for_update=True)
            assert prompt is not None
            prompts.answer(session, prompt, verb, actor=actor, now=self.clock.now(),
                           snooze=self.config.snooze, account_name=account.name)
        return prompt, account.name

    # ------------------------------------------------------------------ reading

    def report(self, *, actor: str) -> HealthReport:
        """`/health report`, `opsloop health report`: retention, separation, interventions."""
        self.authz.require(actor, "health.report", subject="health report", doing="see the health report")
        with self.db.transaction() as session:
            return report.build(session, today=self.today(self.clock.now()),
                                min_outcomes=self.config.min_outcomes)

    def calibrate(self, *, days: int) -> Calibration:
        """Weights fitted on the known outcomes (raises NotEnoughData); changes nothing."""
        with self.db.transaction() as session:
            return calibrate(session, self.config.weights, today=self.today(self.clock.now()), days=days,
                             min_outcomes=self.config.min_outcomes)

    def find(self, account: str) -> Account:
        """An account by id or (case-insensitively) by name."""
        with self.db.transaction() as session:
            row = session.get(Account, account.lower()) or session.exec(
                select(Account).where(func.lower(Account.name) == account.lower())).first()
        if row is None:
            raise NotFound(f"no account {account!r} (try its id, e.g. `/health acme`)")
        return row

    def view(self, *, actor: str, account: str) -> AccountHealth:
        """One account's score, factors, trend and prompt (its CSM, sales owner or health.view)."""
        row = self.find(account)
        self.authorize(actor, "health.view", row, owners=(row.csm, row.sales_owner))
        return self._health([row.id])[0]

    def mine(self, *, actor: str) -> list[AccountHealth]:
        """The accounts `actor` is the CSM of, most at risk first."""
        with self.db.transaction() as session:
            ids = list(session.exec(select(Account.id).where(Account.csm == actor)))
        found = self._health(ids)
        return sorted(found, key=lambda h: (h.score.score, h.account.id))

    def _health(self, ids: list[str]) -> list[AccountHealth]:
        if not ids:
            return []
        with self.db.transaction() as session:
            missing = [t for t in ids if t not in latest_scores(session, ids)]
        if missing:  # never scored (a new account): score it now, which is also its first history row
            self.recompute(missing, cause="first look")
        today = self.today(self.clock.now())
        with self.db.transaction() as session:
            accounts = _accounts(session, ids)
            newest = select(func.max(HealthScore.id)).where(col(HealthScore.tenant_id).in_(ids)) \
                .group_by(HealthScore.tenant_id)
            scores = {row.tenant_id: row for row in session.exec(
                select(HealthScore).where(col(HealthScore.id).in_(newest)))}
            days = daily.series(session, ids, today=today)
            current = prompts.current_many(session, ids)
            return [AccountHealth(accounts[tenant], score,
                                  Assessment.from_json(score.score, score.band, score.factors),
                                  days[tenant], current.get(tenant))
                    for tenant, score in scores.items()]

    def availability(self, tenant: str) -> Availability:
        """The account's last 90 days against its tier's contract (`status.contract`)."""
        with self.db.snapshot() as session:
            return availability(session, [tenant], until=self.clock.now(), policy=self.policy.status)[tenant]

    def authorize(self, actor: str, action: str, account: Account, *,
                   owners: tuple[str | None, ...]) -> None:
        self.authz.require(actor, action, subject=f"account:{account.id}", owners=owners,
                           doing=f"{describe(action)} for {account.name}",
                           owner_is="the account's CSM")

    def today(self, now: datetime) -> date:
        return now.astimezone(self.zone).date()


def _accounts(session: Session, ids: Sequence[str] | None) -> dict[str, AccountFacts]:
    columns = (col(Account.id), col(Account.name), col(Account.tier), col(Account.arr),
               col(Account.renewal_date), col(Account.csm))
    query = sa_select(*columns)
    if ids is not None:
        query = query.where(col(Account.id).in_(ids))
    return {row[0]: AccountFacts(*row) for row in session.execute(query.order_by(col(Account.id)))}


def latest_scores(session: Session, tenants: Sequence[str] | None) -> dict[str, ScoreRow]:
    newest = select(func.max(HealthScore.id)).group_by(HealthScore.tenant_id)
    if tenants is not None:
        newest = newest.where(col(HealthScore.tenant_id).in_(tenants))
    columns = (col(HealthScore.id), col(HealthScore.tenant_id), col(HealthScore.at), col(HealthScore.score),
               col(HealthScore.band), col(HealthScore.factors))
    rows = session.execute(sa_select(*columns).where(col(HealthScore.id).in_(newest)))
    return {row[1]: ScoreRow(*row) for row in rows}


def _insert_scores(session: Session, rows: list[dict[str, Any]]) -> dict[str, ScoreRow]:
    """One multi-row INSERT ... RETURNING for every new score row (prompts refer to their ids)."""
    if not rows:
        return {}
    ids = session.execute(insert(HealthScore).returning(col(HealthScore.id), sort_by_parameter_order=True),
                          rows).scalars().all()
    return {r["tenant_id"]: ScoreRow(i, r["tenant_id"], r["at"], r["score"], r["band"], r["factors"])
            for i, r in zip(ids, rows, strict=True)}


def _differs(row: ScoreRow, assessment: Assessment) -> bool:
    return (row.score != assessment.score or row.band != assessment.band
            or [r["name"] for r in row.factors.get("rules", [])] != [r.name for r in assessment.rules])
