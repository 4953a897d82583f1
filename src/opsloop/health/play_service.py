"""The plays service: who may open, read, advance and close plays, each in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.errors import InvalidInput, NotFound
from opsloop.health import plays
from opsloop.health.models import DISMISSED, TAKEN, HealthPrompt
from opsloop.health.plays import PlayView
from opsloop.health.score import Assessment
from opsloop.health.service import Health, latest_scores
from opsloop.messages import user
from opsloop.models import Account
from opsloop.sla.calendars import WorkingTime, working_time
from opsloop.timers.models import Timer

Which = Literal["all", "mine", "overdue"]
MAX_LISTED = 50


class Plays:
    def __init__(self, health: Health) -> None:
        self.health = health
        self.config = health.config.plays

    @property
    def calendar(self) -> WorkingTime:
        return working_time(self.health.policy, self.config.calendar)

    # ------------------------------------------------------------------ opening

    def take(self, *, actor: str, account: str | None = None, prompt_id: str | None = None,
             playbook: str | None = None) -> PlayView:
        """Open a play on an account (by name, or the account of a prompt), as `actor`."""
        h = self.health
        row, prompt = self._target(account, prompt_id)
        h.authorize(actor, "health.respond", row, owners=(row.csm,))
        now = h.clock.now()
        with h.db.transaction() as session:
            audit.lock_chain(session)
            current = session.exec(select(HealthPrompt).where(HealthPrompt.tenant_id == row.id,
                                                              col(HealthPrompt.ended_at).is_(None))
                                   .with_for_update()).first()
            if prompt is not None and (current is None or current.id != prompt.id):
                raise InvalidInput(f"prompt {prompt.id} about {row.name} is over ({prompt.end_reason}); "
                                   f"`/health take {row.id}` opens a play on the account as it is now")
            if prompt is not None and prompt.status in (TAKEN, DISMISSED):  # a stale button
                raise InvalidInput(f"{user(prompt.answered_by)} already answered this prompt about "
                                   f"{row.name}: {prompt.status}")
            latest = latest_scores(session, [row.id]).get(row.id)
            reasons = (current.reasons if current is not None else Assessment.from_json(
                latest.score, latest.band, latest.factors).reasons() if latest is not None else [])
            chosen = (playbook or (current.playbook if current is not None else None)
                      or h.playbooks.suggest(reasons))
            if chosen is None:
                raise NotFound(f"no playbook to run: add one to {h.playbooks.directory}")
            loaded = h.playbooks.load(chosen)
            score = latest.score if latest is not None else 100
            view = plays.open_play(session, row, loaded, owner=actor, score=score, prompt=current,
                                   calendar=self.calendar, remind_before=self.config.remind_before,
                                   zone=h.zone, now=now)
            self._escalate(session, view, score, now)
        return view

    def _target(self, account: str | None, prompt_id: str | None) -> tuple[Account, HealthPrompt | None]:
        if prompt_id is not None:
            if not prompt_id.isdigit() or len(prompt_id) > 12:
                raise InvalidInput(f"{prompt_id!r} is not a prompt id")
            with self.health.db.transaction() as session:
                prompt = session.get(HealthPrompt, int(prompt_id))
                row = session.get(Account, prompt.tenant_id) if prompt else None
            if prompt is None or row is None:
                raise NotFound(f"no health prompt {prompt_id}")
            return row, prompt
        if not account:
            raise InvalidInput("usage: /health take ACCOUNT [playbook:ID]")
        return self.health.find(account), None

    def _escalate(self, session: Session, view: PlayView, score: int, now: datetime) -> None:
        rule = self.health.config.executive
        account = view.account
        if (rule is None or account.tier not in rule.tiers or score >= rule.score_below
                or account.arr < rule.min_arr):
            return
        if account.executive_sponsor:
            people, who = [account.executive_sponsor], "the account's executive sponsor"
        else:
            people, who = self.health.authz.people("leader"), "the leader role (the account has no sponsor)"
        people = [p for p in people if p != view.play.owner]
        if people:
            plays.escalate(session, view, people, now=now,
                           why=f"Executive escalation: {account.tier} account at {score}/100 (below "
                               f"{rule.score_below}); you are {who}.")

    # ------------------------------------------------------------------ reading

    def show(self, *, actor: str, ref: str) -> PlayView:
        view = self._load(ref)
        self._may(actor, view, "health.view", extra=(view.account.sales_owner,))
        return view

    def open_for(self, tenant: str) -> PlayView | None:
        """The account's open play, if any (the caller has authorised the look)."""
        with self.health.db.transaction() as session:
            play = plays.open_of(session, tenant)
            return plays.load(session, play.id, self.health.zone) if play and play.id else None

    def listing(self, *, actor: str, which: Which) -> list[PlayView]:
        """Open plays: `mine`, `overdue` (of everyone's, for health.view roles), or all of them.
        People without health.view see only their own."""
        h = self.health
        now = h.clock.now()
        everyone = h.authz.allowed(actor, "health.view")
        with h.db.transaction() as session:
            views = plays.load_open(session, h.zone, owner=actor if which == "mine" or not everyone else None)
        if which == "overdue":
            views = [v for v in views if plays.overdue(v, now)]
        return sorted(views, key=lambda v: min((s.due_at for s in v.steps if s.done_at is None),
                                               default=v.play.opened_at))[:MAX_LISTED]

    # ------------------------------------------------------------------ changing

    def done(self, *, actor: str, ref: str, step: str) -> PlayView:
        return self._change(actor, ref, lambda session, view, now: plays.step_done(
            session, view, step, actor=actor, now=now))

    def close(self, *, actor: str, ref: str, outcome: str, note: str) -> PlayView:
        return self._change(actor, ref, lambda session, view, now: plays.close(
            session, view, outcome.strip().lower(), note, actor=actor, now=now))

    def _change(self, actor: str, ref: str,
                change: Callable[[Session, PlayView, datetime], object]) -> PlayView:
        """Authorise `actor` on the play, then change it locked, in one transaction."""
        view = self._load(ref)
        self._may(actor, view, "health.respond")
        now = self.health.clock.now()
        with self.health.db.transaction() as session:
            audit.lock_chain(session)
            view = plays.load(session, view.play.id or 0, self.health.zone, lock=True)
            change(session, view, now)
        return view

    def _load(self, ref: str) -> PlayView:
        with self.health.db.transaction() as session:
            return plays.load(session, plays.parse_ref(ref), self.health.zone)

    def _may(self, actor: str, view: PlayView, action: str, extra: tuple[str | None, ...] = ()) -> None:
        self.health.authorize(actor, action, view.account, owners=(view.play.owner, view.account.csm, *extra))

    def on_remind(self, session: Session, timer: Timer, now: datetime) -> str:
        """The `health.play.remind` timer: a play's step is coming due, or overdue."""
        return plays.remind(session, timer, now, calendar=self.calendar, every=self.config.remind_every,
                            zone=self.health.zone)

