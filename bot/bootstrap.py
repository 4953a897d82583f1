"""The one place where opsloop is assembled: settings in, services out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bot.settings import Settings
from opsloop.accounts import import_catalog
from opsloop.authz import Authorizer, Directory
from opsloop.clock import Clock, SystemClock
from opsloop.commands import Commands
from opsloop.db import Database
from opsloop.errors import ConfigError
from opsloop.policy import Policy, load_policy
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
    # called after every commit that may have queued outbound messages
    wakers: list[Callable[[], None]] = field(default_factory=list)
    # started (in order) and stopped (in reverse) by the long-running servers
    background: list[Worker] = field(default_factory=list)


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
    services = Services(settings=settings, policy=policy, db=db, clock=clock, authz=authz,
                        workitems=workitems, commands=Commands(workitems), wakers=wakers)
    if load_accounts and policy.accounts_path is not None:
        import_catalog(db, clock, policy.accounts_path, actor=SYSTEM_ACTOR)
    return services
