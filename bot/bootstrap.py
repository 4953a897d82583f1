"""The one place where opsloop is assembled: settings in, services out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.settings import Settings
from opsloop.accounts import import_catalog
from opsloop.authz import Authorizer, Directory
from opsloop.clock import Clock, SystemClock
from opsloop.commands import Commands
from opsloop.db import Database
from opsloop.errors import ConfigError
from opsloop.oncall import OnCall
from opsloop.policy import Policy, load_policy
from opsloop.sla.escalation import Escalations
from opsloop.sla.service import Sla
from opsloop.sla.sweeper import Sweeper
from opsloop.workitems import WorkItems

SYSTEM_ACTOR = "opsloop"


@dataclass
class Services:
    settings: Settings
    policy: Policy
    db: Database
    clock: Clock
    authz: Authorizer
    workitems: WorkItems
    commands: Commands
    sla: Sla
    oncall: OnCall
    sweeper: Sweeper  # fires due SLA warnings, breaches and escalation pages (bot.scheduler runs it)
    # called after every commit that may have queued outbound messages
    wakers: list[Callable[[], None]] = field(default_factory=list)



def bootstrap(
    settings: Settings,
    *,
    clock: Clock | None = None,
    directory: Directory | None = None,
    migrate: bool | None = None,
    load_accounts: bool = True,
) -> Services:
    """Build every service from settings.

    `migrate=None` upgrades an embedded SQLite database on start (so the
    README's one command works) and leaves PostgreSQL to `opsloop db upgrade`,
    refusing to start while it is behind.
    """
    policy = load_policy(settings.config)
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
    oncall = OnCall(db, policy, clock, authz)
    sla = Sla(policy, clock, workitems, Escalations(policy, authz, oncall))
    sla.install()
    sweeper = Sweeper(db, clock, sla.handlers(), after_commit=wake)
    commands = Commands(workitems, sla=sla, oncall=oncall)
    services = Services(settings=settings, policy=policy, db=db, clock=clock, authz=authz,
                        workitems=workitems, commands=commands, sla=sla, oncall=oncall,
                        sweeper=sweeper, wakers=wakers)
    if load_accounts and policy.accounts_path is not None:
        import_catalog(db, clock, policy.accounts_path, actor=SYSTEM_ACTOR)
    return services
