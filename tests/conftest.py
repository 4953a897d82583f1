"""Fixtures: every storage test runs on SQLite and on PostgreSQL.

The PostgreSQL leg uses a throwaway database created on the server named by
OPSLOOP_TEST_POSTGRES_URL (default: the local server with trust auth); when
no server answers, that leg is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import opsloop.schema  # noqa: F401 - every table, for the PostgreSQL reset
from opsloop.db import Database
from tests.support import FakeClock

POSTGRES_URL = os.environ.get(
    "OPSLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy (migrating once is much faster)."""
    path = tmp_path_factory.mktemp("template") / "opsloop.db"
    db = Database.from_url(f"sqlite:///{path}")
    db.upgrade()
    db.dispose()  # closing the last connection checkpoints the WAL into the file
    assert not path.with_name("opsloop.db-wal").exists()
    return path


class PostgresLeg:
    """One migrated database for the whole run; tables are emptied and re-seeded between tests."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.skip_reason = ""
        self._admin: Any = None
        self._name = f"opsloop_test_{uuid.uuid4().hex[:10]}"
        self._seed: dict[str, list[dict[str, Any]]] = {}

    def start(self) -> None:
        try:
            self._admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
            with self._admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{self._name}"'))
        except Exception as error:
            where = make_url(POSTGRES_URL).render_as_string(hide_password=True)
            self.skip_reason = (
                f"PostgreSQL leg skipped: no server reachable at {where} "
                f"({type(error).__name__}: {str(error).splitlines()[0]})"
            )
            return
        self.url = make_url(POSTGRES_URL).set(database=self._name).render_as_string(hide_password=False)
        db = Database.from_url(self.url)
        db.upgrade()
        with db.engine.connect() as connection:  # rows the migrations seed (counters, chain head)
            for table in SQLModel.metadata.sorted_tables:
                rows = [dict(r._mapping) for r in connection.execute(table.select())]
                if rows:
                    self._seed[table.name] = rows
        db.dispose()

    def reset(self, db: Database) -> None:
        names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
        with db.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            for table in SQLModel.metadata.sorted_tables:
                if table.name in self._seed:
                    connection.execute(insert(table), self._seed[table.name])

    def stop(self) -> None:
        if self._admin is not None and self.url is not None:
            with self._admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)'))
        if self._admin is not None:
            self._admin.dispose()


@pytest.fixture(scope="session")
def postgres_leg() -> Iterator[PostgresLeg]:
    leg = PostgresLeg()
    leg.start()
    yield leg
    leg.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A migrated, empty database URL, once per backend."""
    if request.param == "sqlite":
        path = tmp_path / "opsloop.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    yield request.getfixturevalue("postgres_url")


@pytest.fixture
def postgres_url(postgres_leg: PostgresLeg) -> str:
    """An emptied, migrated PostgreSQL database, for tests that only make sense there."""
    if postgres_leg.url is None:
        pytest.skip(postgres_leg.skip_reason)
    db = Database.from_url(postgres_leg.url)
    postgres_leg.reset(db)
    db.dispose()
    return postgres_leg.url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database.from_url(db_url)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end tests are `slow` (deselect them with `-m "not slow"`): those that run the real
    HTTP server (the `server` fixture or a `LiveServer`); those that start opsloop or a peer as a
    process say so themselves."""
    for item in items:
        module = getattr(item, "module", None)
        names = vars(module) if module is not None else {}
        if "server" in getattr(item, "fixturenames", ()) or "LiveServer" in names or "serve" in names:
            item.add_marker(pytest.mark.slow)
