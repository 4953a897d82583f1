"""Settings in, services out: the core assembled with THE table, plus the adapters.

THE table (who hears what, and which handler fires each durable timer) is
`opsloop/table.py`; `opsloop.table.assemble` builds the core with it. The
console, Slack mode (HTTP or Socket Mode) and the tests all run that table:
this module only reads the settings and adds what the adapters need (the
settings themselves, the background workers, the thread pool).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Unpack

from bot.core_pool import CorePool, Pool
from bot.settings import Settings
from opsloop.compliance.startup import fingerprint, record_start
from opsloop.core import Core
from opsloop.errors import ConfigError
from opsloop.runbooks.loader import Library
from opsloop.table import Options, assemble


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
    pool: Pool = field(default_factory=CorePool)


def bootstrap(settings: Settings, **options: Unpack[Options]) -> Services:
    """Build every service from settings, with THE table (`opsloop.table`; `options` are as there)."""
    if not settings.config.is_file():  # e.g. run outside the folder that holds opsloop.yml
        raise ConfigError(f"no policy file at {settings.config.absolute()}: run opsloop in the folder that "
                          "holds opsloop.yml, or point at one with OPSLOOP_CONFIG=/path/to/opsloop.yml (and "
                          "OPSLOOP_RUNBOOKS_DIR, OPSLOOP_DATABASE_URL if they are not beside it)")
    return assemble(settings.sources, signing_key=settings.audit_signing_key,
                    status_key=settings.status_key.get_secret_value() if settings.status_key else None,
                    cls=Services, extra={"settings": settings}, **options)


def record_started(services: Services, *, mode: str) -> None:
    """Record what this start of the bot runs with (the policy, runbooks, roles) as audit evidence."""
    settings = services.settings
    found = fingerprint(settings.config, services.policy, Library(settings.runbooks_dir))
    record_start(services.db, services.clock, found, mode=mode)
