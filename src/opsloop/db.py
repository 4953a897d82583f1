"""Engines, transactions and migrations for SQLite (embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

from opsloop.errors import ConfigError

_READ_ONLY = "opsloop_read_only"


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the driver opsloop installs), not psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    try:
        url = normalize_url(url)
        if url.startswith("sqlite"):
            return _sqlite_engine(url, **kwargs)
        return create_engine(url, pool_pre_ping=True, **kwargs)
    except Exception as error:  # an unparseable URL or a missing driver
        raise ConfigError(f"OPSLOOP_DATABASE_URL: cannot use {make_url_safe(url)}: {error}") from None


def make_url_safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    # pysqlite's own transaction handling is off so that every transaction
    # starts with BEGIN IMMEDIATE: writers queue on the lock instead of
    # failing with "database is locked" when a read upgrades to a write.
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # a snapshot (Database.snapshot) only reads: a deferred BEGIN never waits for writers
        deferred = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

    return engine


# How many of the rows a transaction most recently wrote or read it keeps in memory. The ORM's
# identity map holds rows weakly: a row a handler inserted (a runbook run, its snapshot, a work
# item) and let go of was read again, by primary key, by the next handler of the same declare
# (profile: 5 of a declare's ~100 statements). Bounded, so a long read does not keep every row.
KEPT_ROWS = 512


class _Session(Session):
    """A session that remembers whether it wrote anything, and keeps its recent rows alive."""

    wrote = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kept: deque[object] = deque(maxlen=KEPT_ROWS)


@event.listens_for(_Session, "pending_to_persistent")
@event.listens_for(_Session, "loaded_as_persistent")
def _keep(session: _Session, instance: object) -> None:
    session.kept.append(instance)


@event.listens_for(_Session, "after_flush")
def _flushed(session: _Session, _context: Any) -> None:
    session.wrote = True


class Database:
    """The one handle on storage the services share.

    `after_commit` is called after every transaction that wrote and committed
    (e.g. to wake the outbox worker: what the change queued can go out now).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.after_commit: Callable[[], None] = lambda: None

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(make_engine(url))

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits together on success and rolls back on any error."""
        with _Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session
            if session.wrote:
                self.after_commit()

    # ------------------------------------------------------------------ migrations

    def alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(resources.files("opsloop") / "migrations"))
        return config

    def upgrade(self) -> None:
        """Apply every pending migration; running it again changes nothing."""
        config = self.alembic_config()
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def migrations_current(self) -> bool:
        script = ScriptDirectory.from_config(self.alembic_config())
        with self.engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
        return current == set(script.get_heads())

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read-only session on one consistent snapshot that does not hold writers up.

        For long reads (verifying the whole audit chain, building evidence):
        every query sees the same state, however many pages it reads.
        """
        with self.engine.connect() as connection:
            if self.is_sqlite:  # WAL: a read transaction sees the database as it was when it began
                connection.execution_options(**{_READ_ONLY: True})
            else:
                connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with connection.begin(), Session(bind=connection, expire_on_commit=False) as session:
                yield session

    def dispose(self) -> None:
        self.engine.dispose()
