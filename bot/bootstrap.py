"""The one place where opsloop is assembled: settings in, services out."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from bot.core_pool import CorePool
from bot.settings import Settings
from opsloop.accounts import import_catalog
from opsloop.authz import Authorizer, Directory
from opsloop.clock import Clock, SystemClock
from opsloop.commands import Commands
from opsloop.db import Database
from opsloop.deadline import deadline_client
from opsloop.digest.service import Digests
from opsloop.errors import ConfigError
from opsloop.exception_approvals import ExceptionApprovals
from opsloop.health.play_service import Plays
from opsloop.health.playbooks import Playbooks
from opsloop.health.service import Health
from opsloop.intake.service import Intake
from opsloop.loops.service import FeedbackLoops
from opsloop.oncall import OnCall
from opsloop.policy import Policy, load_policy
from opsloop.remediation.dryrun import DryRun
from opsloop.remediation.http import HttpExecutor
from opsloop.remediation.safety import Resolver, SystemResolver
from opsloop.remediation.service import Remediation
from opsloop.runbooks.check import startup_problems
from opsloop.runbooks.loader import Library
from opsloop.runbooks.runs import Runbooks
from opsloop.sla.clocks import BREACH
from opsloop.sla.escalation import Escalations
from opsloop.sla.service import Sla
from opsloop.sla.sweeper import Sweeper
from opsloop.workitems import WorkItems

SYSTEM_ACTOR = "opsloop"


class Worker(Protocol):
    """Something that runs in the background of `opsloop serve` / `opsloop socket`
    (the outbox dispatcher, the scheduler): started once at start-up, stopped at shutdown."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Services:
    settings: Settings
    policy: Policy
    db: Database
    clock: Clock
    authz: Authorizer
    workitems: WorkItems
    commands: Commands
    intake: Intake
    loops: FeedbackLoops
    runbooks: Runbooks
    sla: Sla
    oncall: OnCall
    sweeper: Sweeper  # fires due SLA warnings, breaches and escalation pages (bot.scheduler runs it)
    remediation: Remediation  # runs approved http steps (bot.scheduler runs its work loop)
    exceptions: ExceptionApprovals  # asks approvers, announces decisions, expires exceptions
    health: Health  # customer health scores, signals (POST /hooks/signals) and CSM prompts
    digests: Digests  # the leadership digest (bot.scheduler posts the daily one)
    # called after every commit that may have queued outbound messages
    wakers: list[Callable[[], None]] = field(default_factory=list)
    # started (in order) and stopped (in reverse) by the long-running servers
    background: list[Worker] = field(default_factory=list)
    # the threads async adapters (Slack listeners, webhooks) run the synchronous core in
    pool: CorePool = field(default_factory=CorePool)

def bootstrap(
    settings: Settings,
    *,
    clock: Clock | None = None,
    directory: Directory | None = None,
    migrate: bool | None = None,
    load_accounts: bool = True,
    load_feeds: bool = True,
    http_client: httpx.Client | None = None,
    resolver: Resolver | None = None,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Services:
    """Build every service from settings.

    `migrate=None` upgrades an embedded SQLite database on start (so the
    README's one command works) and leaves PostgreSQL to `opsloop db upgrade`,
    refusing to start while it is behind.
    """
    policy = load_policy(settings.config)
    library = Library(settings.runbooks_dir)
    playbooks = Playbooks(settings.playbooks)
    problems = startup_problems(library, policy, str(settings.config)) + playbooks.problems()
    if problems:
        raise ConfigError("\n".join(problems))
    db = Database.from_url(settings.database_url)
    if migrate or (migrate is None and db.is_sqlite):
        db.upgrade()
    elif not db.migrations_current():
        raise ConfigError("the database schema is not current: run `opsloop db upgrade`")
    clock = clock or SystemClock()
    authz = Authorizer(policy, directory)
    wakers: list[Callable[[], None]] = []

    def wake() -> None:
        for waker in wakers:
            waker()

    workitems = WorkItems(db, policy, clock, authz, after_commit=wake)
    runbooks = Runbooks(db, policy, clock, authz, library, workitems)
    workitems.hooks.append(runbooks.on_created)
    workitems.posted_hooks.append(runbooks.on_posted)
    workitems.card_extras.append(runbooks.card_fields)
    intake = Intake(db, policy, clock, workitems)
    workitems.hooks.append(intake.on_item_event)
    workitems.card_extras.append(intake.card_fields)
    try:
        loops = FeedbackLoops(db, policy, clock)
    except ConfigError as error:
        raise ConfigError(f"{settings.config}: {error}") from None
    workitems.hooks.append(loops.on_item_event)
    workitems.card_extras.append(loops.card_fields)
    workitems.loop_readers.append(loops.describe_open)
    oncall = OnCall(db, policy, clock, authz)
    sla = Sla(policy, clock, workitems, Escalations(policy, authz, oncall))
    sla.install()
    # runbook http steps: a total deadline per attempt; never follow redirects, whatever the client's defaults
    client = http_client or deadline_client()
    executor = HttpExecutor(client, policy.actions, resolver or SystemResolver(),
                            os.environ if environ is None else environ, sleep=sleep, now=clock.now)
    remediation = Remediation(db, policy, clock, authz, runbooks, executor)
    remediation.install()
    runbooks.dry_runners.append(DryRun(remediation.gates, executor).report)
    exceptions = ExceptionApprovals(policy, clock, authz, workitems)
    exceptions.install()
    health = Health(db, policy, clock, authz, playbooks=playbooks, after_commit=wake)
    health.install(workitems)
    plays = Plays(health)
    sla_handlers = sla.handlers()
    # health wraps the SLA breach handler: a breach also rescores the accounts it touched
    sweeper = Sweeper(db, clock, {**sla_handlers, **remediation.handlers(), **exceptions.handlers(),
                                  **health.handlers((BREACH, sla_handlers[BREACH])),
                                  **plays.handlers()}, after_commit=wake)
    digests = Digests(db, policy, clock, authz, after_commit=wake)
    commands = Commands(workitems, runbooks, sla=sla, oncall=oncall, remediation=remediation,
                        health=health, plays=plays, digests=digests)
    services = Services(settings=settings, policy=policy, db=db, clock=clock, authz=authz,
                        workitems=workitems, commands=commands, intake=intake, loops=loops,
                        runbooks=runbooks, sla=sla, oncall=oncall, sweeper=sweeper,
                        remediation=remediation, exceptions=exceptions, health=health, digests=digests,
                        wakers=wakers)
    if load_accounts and policy.accounts_path is not None:
        import_catalog(db, clock, policy.accounts_path, actor=SYSTEM_ACTOR)
    if load_feeds:  # on-call teams fed by iCal files: read what changed since the last load
        oncall.feeds.load_on_start(actor=SYSTEM_ACTOR)
    return services
