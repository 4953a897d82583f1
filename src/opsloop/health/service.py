"""The health service: recompute scores when their inputs change, prompt CSMs, answer look-ups.

Scores are recomputed in the transaction of whatever changed an input, so a
score never disagrees with what it was computed from:

- a work item touching tenants is created, gets tenants or changes state (a WorkItems hook);
- an SLA target of such an item is breached (the breach timer's handler, wrapped);
- signals arrive (`ingest`);
- every day at `health.daily_at` (a durable timer that re-arms itself), which
  also lets old incidents and signals age out of the window;
- a prompt's snooze runs out (a durable timer per snooze).

A score row is written when the score, band or rules changed, and by the
daily run; each is also the day's entry in the daily series (`opsloop.health.daily`),
whose last score per local day is what trends and the report read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlalchemy import select as sa_select  # sqlmodel's is typed for at most four columns
from sqlmodel import Session, col, func, select

from opsloop import audit
from opsloop.authz import Authorizer
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.errors import InvalidInput, NotFound, PermissionDenied
from opsloop.health import daily, prompts, report, signals
from opsloop.health.calibrate import Calibration, calibrate
from opsloop.health.inputs import gather
from opsloop.health.models import HealthPrompt, HealthScore, ScoreRow
from opsloop.health.playbooks import Playbooks
from opsloop.health.report import HealthReport
from opsloop.health.score import HEALTHY, AccountFacts, Assessment, assess
from opsloop.models import Account, WorkItem, WorkItemTenant
from opsloop.policy import Policy
from opsloop.sla.models import SlaClock, Timer
from opsloop.sla.sweeper import TimerHandler
from opsloop.workitems import ItemEvent, WorkItems

DAILY = "health.daily"
SYSTEM = "opsloop"


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


class Health:
    def __init__(self, db: Database, policy: Policy, clock: Clock, authz: Authorizer, *,
                 playbooks: Playbooks, after_commit: Callable[[], None] | None = None) -> None:
        self.db = db
        self.playbooks = playbooks
        self.policy = policy
        self.config = policy.health
        self.clock = clock
        self.authz = authz
        self.after_commit = after_commit or (lambda: None)
        self.zone = ZoneInfo(policy.timezone)

    def install(self, workitems: WorkItems) -> None:
        workitems.hooks.append(self.on_item_event)
        # a new item rescores after its card is queued, so the card reaches the channel before
        # any prompt it causes reaches the CSM
        workitems.posted_hooks.append(self.on_item_created)

    def handlers(self, breach: tuple[str, TimerHandler] | None = None) -> dict[str, TimerHandler]:
        """The timer handlers: the daily run, snooze ends, and (given the SLA's) breaches that rescore."""
        out: dict[str, TimerHandler] = {DAILY: self._daily, prompts.SNOOZE_END: self._snooze_end}
        if breach is not None:
            out[breach[0]] = self.after_breach(breach[1])
        return out

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
                audit.record(session, at=now, actor=SYSTEM, action="health.band", subject=f"account:{tenant}",
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
            out = self.recompute_in(session, tenants, cause=cause)
        self.after_commit()
        return out

    def recompute_all_in(self, session: Session, *, cause: str, now: datetime | None = None) -> int:
        """Every account, with a score row each (the daily run: one row a day shows the trend)."""
        return len(self.recompute_in(session, None, cause=cause, now=now, force=True).assessments)

    def on_item_event(self, session: Session, event: ItemEvent) -> None:
        """A WorkItems hook: rescore the item's tenants when it gets tenants or changes state."""
        if event.tenants and event.action != "created" and (
                event.action == "tenants" or event.before != event.item.state):
            self.recompute_in(session, event.tenants, cause=f"{event.item.ref} {event.action}", now=event.at)

    def on_item_created(self, session: Session, event: ItemEvent) -> None:
        if event.tenants:
            self.recompute_in(session, event.tenants, cause=f"{event.item.ref} created", now=event.at)

    def after_breach(self, handler: TimerHandler) -> TimerHandler:
        """Wrap the SLA breach handler: a missed target rescored its item's tenants."""
        def breach(session: Session, timer: Timer, now: datetime) -> str:
            outcome = handler(session, timer, now)
            clock = session.get(SlaClock, timer.clock_id) if timer.clock_id else None
            if outcome == "fired" and clock is not None:
                item = session.get(WorkItem, clock.work_item_id)
                tenants = list(session.exec(select(WorkItemTenant.tenant_id)
                                            .where(WorkItemTenant.work_item_id == clock.work_item_id)))
                if tenants and item is not None:
                    self.recompute_in(session, tenants, cause=f"{item.ref} {clock.target} breached", now=now)
            return outcome
        return breach

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

    def _daily(self, session: Session, timer: Timer, now: datetime) -> str:
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

    def _snooze_end(self, session: Session, timer: Timer, now: datetime) -> str:
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
        self.after_commit()
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
        self.after_commit()
        return prompt, account.name

    # ------------------------------------------------------------------ reading

    def report(self, *, actor: str) -> HealthReport:
        """`/health report`, `opsloop health report`: retention, separation, interventions."""
        if not self.authz.allowed(actor, "health.report"):
            self.refuse(actor, "health.report", "health report")
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

    def authorize(self, actor: str, action: str, account: Account, *,
                   owners: tuple[str | None, ...]) -> None:
        if actor in owners or self.authz.allowed(actor, action):
            return
        self.refuse(actor, action, f"account:{account.id}",
                    f"you may not {action.replace('.', ' ')} for {account.name}: that needs "
                    f"the account's CSM or the role {self.authz.explain(action)}")

    def refuse(self, actor: str, action: str, subject: str, reason: str | None = None) -> NoReturn:
        """Audit a refusal and raise it."""
        with self.db.transaction() as session:
            audit.record(session, at=self.clock.now(), actor=actor, action="permission.denied",
                         subject=subject, after={"attempted": action})
        raise PermissionDenied(reason or f"you may not see the {subject}: that needs the role "
                                         f"{self.authz.explain(action)}")

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
