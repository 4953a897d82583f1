"""Settings in, services out: the core assembled with THE table, plus the adapters.

THE table (who hears what, and which handler fires each durable timer) is
`opsloop/table.py`; `opsloop.table.assemble` builds the core with it. The
console, Slack mode (HTTP or Socket Mode) and the tests all run that table:
this module only reads the settings and adds what the adapters need (the
settings themselves, the background workers, the thread pool).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from bot.core_pool import CorePool
from bot.settings import Settings
from opsloop.authz import Directory
from opsloop.clock import Clock
from opsloop.compliance.startup import fingerprint, record_start
from opsloop.core import Core
from opsloop.errors import ConfigError
from opsloop.remediation.safety import Resolver
from opsloop.runbooks.loader import Library
from opsloop.table import assemble


class Worker(Protocol):
    """Something that runs in the background of `opsloop serve` / `opsloop socket`
    (the outbox dispatcher, the scheduler): started once at start-up, stopped at shutdown."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Services(Core):
    settings: Settings = field(default_factory=Settings)
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
    """Build every service from settings, with THE table (`opsloop.table`; `migrate` is as there)."""
    if not settings.config.is_file():  # e.g. run outside the folder that holds opsloop.yml
        raise ConfigError(f"no policy file at {settings.config.absolute()}: run opsloop in the folder that "
                          "holds opsloop.yml, or point at one with OPSLOOP_CONFIG=/path/to/opsloop.yml (and "
                          "OPSLOOP_RUNBOOKS_DIR, OPSLOOP_DATABASE_URL if they are not beside it)")
    return assemble(settings.sources, clock=clock, directory=directory, migrate=migrate,
                    load_accounts=load_accounts, load_feeds=load_feeds, http_client=http_client,
                    resolver=resolver, environ=environ, sleep=sleep, signing_key=settings.audit_signing_key,
                    status_key=settings.status_key.get_secret_value() if settings.status_key else None,
                    cls=Services, settings=settings)


def record_started(services: Services, *, mode: str) -> None:
    """Record what this start of the bot runs with (the policy, runbooks, roles) as audit evidence."""
    settings = services.settings
    found = fingerprint(settings.config, services.policy, Library(settings.runbooks_dir))
    record_start(services.db, services.clock, found, mode=mode)
