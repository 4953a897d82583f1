"""THE table: who hears what, and the core assembled with it.

`handler_table` says, for each event, the handlers that hear it, in order,
inside the transaction that caused it. Read a row to know what happens:
`ItemCreated` is what happens when an incident is declared (or an
escalation opened, an exception requested, an alert opens an incident).
`timer_table` says which handler fires each kind of durable timer.

`assemble` builds the core from its `Sources` (the policy file, runbooks,
playbooks, the database) with these two tables. `bot/bootstrap.py` calls it
and adds only the adapters (settings, background workers, the thread pool);
the console, Slack mode (HTTP or Socket Mode) and the tests all run the same
table. A test of one capability may instead call `build_core` with only the
rows it exercises (see `opsloop.core`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, TypeVar, Unpack

import httpx

from opsloop.accounts import seed_catalog
from opsloop.authz import Directory
from opsloop.bus import HandlerTable, on
from opsloop.clock import Clock, SystemClock
from opsloop.compliance.signing import Signer
from opsloop.core import Core, build_core
from opsloop.db import Database
from opsloop.deadline import deadline_client
from opsloop.errors import ConfigError
from opsloop.events import (
    AlertsUpdated,
    ApprovalDecided,
    ApprovalRequested,
    CallFinished,
    ChannelSettled,
    ClockBreached,
    ClockWarned,
    EscalationExhausted,
    EscalationPaged,
    FollowUpClosed,
    FollowUpCreated,
    FollowUpReminded,
    GateReopened,
    ItemChanged,
    ItemCreated,
    LoopsOverdue,
    NoticeDraftPosted,
    Recurred,
    ReviewChanged,
    ReviewReminded,
    RolloutChanged,
    RunAttached,
    RunChanged,
    RunFinished,
    RunNotAttached,
    RunStarted,
    StepCompleted,
    StepOpened,
)
from opsloop.exception_approvals import EXPIRE_TIMER
from opsloop.health.playbooks import Playbooks
from opsloop.health.plays import REMIND
from opsloop.health.prompts import SNOOZE_END
from opsloop.health.service import DAILY
from opsloop.heartbeats.service import DUE as HEARTBEAT_DUE
from opsloop.loops.service import HOLD
from opsloop.maintenance.service import END as MAINTENANCE_END
from opsloop.maintenance.service import START as MAINTENANCE_START
from opsloop.policy_loader import load_policy
from opsloop.remediation.gates import GATE_TIMER
from opsloop.remediation.http import HttpExecutor
from opsloop.remediation.safety import Resolver, SystemResolver
from opsloop.reviews.followups import REMIND as FOLLOWUP_REMIND
from opsloop.reviews.ownership import REMIND as REVIEW_REMIND
from opsloop.runbooks.check import startup_problems
from opsloop.runbooks.loader import Library
from opsloop.schedules.service import TICK as SCHEDULE_TICK
from opsloop.sla.clocks import BREACH, WARN
from opsloop.sla.escalation import PAGE
from opsloop.timers.sweeper import TimerHandler
from opsloop.types import OPSLOOP

log = logging.getLogger(__name__)

C = TypeVar("C", bound=Core)


def handler_table(c: Core) -> HandlerTable:
    """Who hears what, in order, in the transaction of the change that caused it."""
    return HandlerTable(
        # An incident is declared (or an escalation opened, an exception requested, an alert fires):
        on(ItemCreated,
           c.channels.on_created,        # a sev1 gets a channel of its own, before anything is posted
           c.runbooks.attach,            # the routed runbook is pinned and its run created (-> RunAttached)
           c.recurrences.on_created,     # its theme kept; all its follow-ups closed: recurred
           c.loops.on_created,           # each audience opens its loop and hears "start"
           c.sla.start_clocks,           # response / update / resolution clocks; maybe the escalation chain
           c.maintenance.on_created,     # opened during a maintenance window it matches: its clocks pause
           c.exceptions.ask_approvers,   # an exception's approvers are asked by DM
           c.cards.post,                 # the card in its channel, showing all of the above
           c.health.rescore_new_item),   # its accounts are rescored; a CSM may be prompted
        on(RunAttached,
           c.rollouts.pin,               # each foreach step's tenants are chosen now and pinned
           c.checklists.attached),       # the checklist, threaded under the card
        on(RunNotAttached, c.checklists.not_attached),
        on(ChannelSettled, c.cards.channel_settled),
        # A person (or an integration, or a timer) changes an item:
        on(ItemChanged,
           c.runbooks.refuse_close_with_open_steps,  # closing with steps open needs --force "reason"
           c.channels.on_changed,        # raised to a dedicated-channel severity: the channel is made
           c.intake.retire_alerts,       # resolved: its alerts and group are history
           c.loops.follow,               # new tenants or severity: audiences hear; resolved: all hear
           c.sla.follow,                 # clocks stop, pause, resume, start again or follow a new severity
           c.exceptions.follow,          # an exception's decision or end is announced (and timed)
           c.maintenance.follow,         # a window starts (clocks pause) or ends (held alerts that fire page)
           c.runbooks.follow_decision,   # ... and is its runbook's approval step too: one decision
           c.clock_words.settle_pages,   # taken: every page's DM says by whom, its buttons gone
           c.health.rescore_item,        # tenants or state changed: its accounts are rescored
           c.cards.tell,                 # the timeline, the card edited in place, a line in the thread
           c.reviews.on_changed),        # resolved at a severity of reviews.required_for: its review drafted
        on(AlertsUpdated, c.cards.alerts),
        # Runbooks:
        on(StepOpened,
           c.rollouts.on_opened,            # a foreach step's rollout starts: its first wave, its deadline
           c.remediation.on_opened),        # approvals ask their approvers; http steps queue
        on(StepCompleted,
           c.remediation.refuse_busy_call,  # a step whose call is on its way cannot be done by hand
           c.rollouts.refuse_busy,          # nor a rollout under way (Abort it)
           c.checklists.step,
           c.redesign.after_bypass),        # a step bypassed too often: its owners are told
        on(ApprovalDecided,
           c.remediation.gates.on_decision,  # the approval binds to the exact requests it lets through
           c.checklists.step,
           c.remediation_words.decided),     # decided: every copy of the request (thread, DMs) says so
        on(RunStarted,
           c.rollouts.pin,               # a run that waited for inputs: its foreach steps' tenants pinned
           c.checklists.started),
        on(RunChanged, c.checklists.changed),
        on(RunFinished,
           c.checklists.finished,
           c.schedules.on_run_finished),  # a scheduled task whose runbook completed is resolved
        on(ApprovalRequested, c.remediation_words.requested),
        on(GateReopened, c.remediation_words.reopened),
        on(CallFinished, c.remediation_words.finished),
        on(RolloutChanged,
           c.rollout_words.changed,      # the progress message edited, a line per turn; a halt pages owners
           c.loops.on_rollout),          # each tenant's customers hear when its wave starts and is done
        # SLA clocks and escalation:
        on(ClockWarned, c.clock_words.warned),
        on(ClockBreached,
           c.health.after_breach,        # a missed target rescores the item's accounts
           c.clock_words.breached),
        on(EscalationPaged, c.clock_words.paged),
        on(EscalationExhausted, c.clock_words.exhausted),
        # Reviews and follow-ups:
        on(FollowUpCreated, c.followup_words.created),  # on the item's timeline and thread; its owner by DM
        on(FollowUpClosed, c.followup_words.closed),
        on(FollowUpReminded, c.followup_words.reminded),  # due soon or overdue: its owner by DM
        on(Recurred, c.review_words.recurred),           # on the timeline and in the thread
        on(ReviewChanged, c.review_words.changed),  # the timeline, the thread, the document (canvas, file)
        on(ReviewReminded, c.review_words.reminded),  # its owner by DM; nobody owns it: who may assign it
        # Customer notices in review:
        on(LoopsOverdue, c.notice_words.loops_overdue),  # loops still open long after resolution, told
        on(NoticeDraftPosted, c.notice_words.posted),  # the draft in each reviewer's DM, or edited there
    )


def timer_table(c: Core) -> Mapping[str, TimerHandler]:
    """The handler of each kind of durable timer."""
    return {
        WARN: c.sla.on_warn,                    # a clock's warn_at mark (-> ClockWarned)
        BREACH: c.sla.on_breach,                # a clock's target (-> ClockBreached)
        PAGE: c.sla.on_page,                    # the next level of an escalation chain (-> EscalationPaged)
        GATE_TIMER: c.remediation.gates.on_timer,  # an approval round that lapsed: asked again
        EXPIRE_TIMER: c.exceptions.on_expire,   # an approved exception's end
        DAILY: c.health.on_daily,               # every account rescored, once a day
        SNOOZE_END: c.health.on_snooze_end,     # a snoozed CSM prompt is looked at again
        REMIND: c.plays.on_remind,              # a play's step coming due: its owner is reminded
        HEARTBEAT_DUE: c.heartbeats.on_due,     # no check-in by the deadline: an incident, once
        MAINTENANCE_START: c.maintenance.on_start,  # a scheduled window's start: it becomes active
        MAINTENANCE_END: c.maintenance.on_end,  # its end: what it held and still fires opens incidents
        HOLD: c.loops.on_hold,                  # an item's loops.hold is over: customers' first notice
        FOLLOWUP_REMIND: c.followups.on_remind,  # a follow-up due soon or overdue: its owner is reminded
        REVIEW_REMIND: c.reviews.on_remind,     # a review due soon or overdue: its owner is reminded
        SCHEDULE_TICK: c.schedules.on_tick,     # a schedule's tick: a task with its runbook, once
    }


@dataclass(frozen=True, kw_only=True)
class Sources:
    """What a core is built from: the policy file, the runbooks and playbooks folders, the database."""

    config: Path
    runbooks_dir: Path
    database_url: str
    playbooks_dir: Path | None = None  # unset: the `playbooks` folder beside the policy file

    @property
    def playbooks(self) -> Path:
        return self.playbooks_dir if self.playbooks_dir is not None else self.config.parent / "playbooks"


class Options(TypedDict, total=False):
    """What a caller of `assemble` (or `bot.bootstrap.bootstrap`) may set; each left out takes its default.

    `migrate` (default None) upgrades an embedded SQLite database on start (so
    the README's one command works) and leaves PostgreSQL to `opsloop db
    upgrade`, refusing to start while it is behind; True always upgrades.
    """

    clock: Clock | None  # default: the system clock
    directory: Directory | None
    migrate: bool | None
    load_accounts: bool  # default True: the policy's accounts file seeds an empty catalog
    load_feeds: bool  # default True: on-call iCal feeds are read on start
    http_client: httpx.Client | None  # default: a deadline client (runbook http steps)
    resolver: Resolver | None  # default: the system's DNS
    environ: Mapping[str, str] | None  # default: os.environ
    sleep: Callable[[float], None]  # default: time.sleep


def assemble(
    sources: Sources,
    *,
    signing_key: Path | None = None,
    status_key: str | None = None,
    cls: type[C] = Core,  # type: ignore[assignment]
    extra: Mapping[str, Any] | None = None,
    **options: Unpack[Options],
) -> C:
    """Every service of the product built from `sources`, with THE table; `cls` (a subclass of Core)
    may carry `extra` fields (bot/bootstrap.py adds its adapters' so)."""
    migrate, environ = options.get("migrate"), options.get("environ")
    policy = load_policy(sources.config)
    library = Library(sources.runbooks_dir)
    playbooks = Playbooks(sources.playbooks)
    problems = startup_problems(library, policy, str(sources.config)) + playbooks.problems()
    if problems:
        raise ConfigError("\n".join(problems))
    db = Database.from_url(sources.database_url)
    if migrate or (migrate is None and db.is_sqlite):
        db.upgrade()
    elif not db.migrations_current():
        raise ConfigError("the database schema is not current: run `opsloop db upgrade`")
    clock = options.get("clock") or SystemClock()
    # runbook http steps: a total deadline per attempt; never follow redirects, whatever the client's defaults
    client = options.get("http_client") or deadline_client()
    executor = HttpExecutor(client, policy.actions, options.get("resolver") or SystemResolver(),
                            os.environ if environ is None else environ,
                            sleep=options.get("sleep", time.sleep), now=clock.now)
    # the key that signs audit checkpoints comes from the environment, never from the database
    signer = Signer.load(signing_key) if signing_key else None
    core = build_core(policy=policy, library=library, playbooks=playbooks, db=db, clock=clock,
                      executor=executor, handlers=handler_table, timers=timer_table,
                      directory=options.get("directory"), signer=signer, status_key=status_key, cls=cls,
                      **(extra or {}))
    if options.get("load_accounts", True) and policy.accounts_path is not None:
        _seed_accounts(db, clock, policy.accounts_path)
    if options.get("load_feeds", True):  # on-call teams fed by iCal files: read what changed since last load
        core.oncall.feeds.load_on_start(actor=OPSLOOP)
    return core


def _seed_accounts(db: Database, clock: Clock, path: Path) -> None:
    """The accounts file seeds an empty catalog; afterwards the catalog is the truth (see README)."""
    seed = seed_catalog(db, clock, path, actor=OPSLOOP)
    if seed.differing:
        shown = ", ".join(seed.differing[:10]) + (" ..." if len(seed.differing) > 10 else "")
        log.warning("%s differs from the account catalog for %d account(s) (%s); the file only seeds an "
                    "empty catalog, so nothing was changed: to apply it, run `opsloop accounts import %s`",
                    path, len(seed.differing), shown, path)
