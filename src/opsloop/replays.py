"""Requests already seen: a signed request sent a second time has no second effect.

A sender's signature covers its timestamp and body, so (timestamp, signature)
names one request. `Replays.first_time` says whether a request is seen for
the first time, recording the SHA-256 of its name (`digest`) until its
timestamp would no longer be accepted (`expires_at`); rows past that are pruned.

- PostgreSQL (any number of replicas): the row is inserted before the answer,
  under a unique key, so of two replicas given the same request exactly one
  is first.
- SQLite (one process by design): one writer holds the whole database, so a
  write per request would queue every acknowledgement behind the core's
  transactions. The process's own memory answers instead, and the rows are
  written behind it (`flush`, every fraction of a second and at shutdown) and
  read back at start (`load`), so a replay after a restart is still
  recognised.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timedelta

from sqlalchemy import Table, delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import ReturningInsert
from sqlmodel import Field, SQLModel, col, select

from opsloop.db import Database
from opsloop.models import utc_column

PRUNE_EVERY = timedelta(minutes=1)


class SeenRequest(SQLModel, table=True):
    __tablename__ = "seen_requests"

    digest: str = Field(primary_key=True, max_length=64)  # SHA-256 of (timestamp, signature)
    expires_at: datetime = utc_column(nullable=False, index=True)


def digest(*parts: str) -> str:
    """One name for a request from the parts its signature covers (NUL-separated: no part contains one)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


class Replays:
    def __init__(self, db: Database, *, write_behind: bool | None = None) -> None:
        self.db = db
        self.write_behind = db.is_sqlite if write_behind is None else write_behind
        self._seen: dict[str, datetime] = {}  # digest -> expires_at, this process's own memory
        self._unwritten: dict[str, datetime] = {}
        self._pruned: datetime | None = None  # memory
        self._rows_pruned: datetime | None = None  # the table
        self._lock = threading.Lock()

    def first_time(self, key: str, *, now: datetime, expires_at: datetime) -> bool:
        """Record `key` (a `digest`); True only for the first caller (on any replica, on PostgreSQL)."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = expires_at
            if _due(self._pruned, now):
                self._pruned = now
                self._seen = {k: v for k, v in self._seen.items() if v >= now}
            if self.write_behind:
                self._unwritten[key] = expires_at
                return True
        with self.db.transaction() as session:
            # a row comes back only when this call inserted it
            return session.connection().execute(self._insert({key: expires_at})).first() is not None

    def flush(self, now: datetime) -> int:
        """Write what was seen but not yet stored, and prune expired rows; returns how many were written."""
        with self._lock:
            unwritten, self._unwritten = self._unwritten, {}
            prune = _due(self._rows_pruned, now)
            if prune:
                self._rows_pruned = now
        if not unwritten and not prune:
            return 0
        with self.db.transaction() as session:
            if unwritten:
                session.connection().execute(self._insert(unwritten))
            if prune:
                session.exec(delete(SeenRequest).where(col(SeenRequest.expires_at) < now))  # type: ignore[call-overload]
        return len(unwritten)

    def load(self, now: datetime) -> int:
        """Remember the requests stored earlier (by this process before a restart) that still count."""
        with self.db.transaction() as session:
            rows = session.exec(select(SeenRequest).where(col(SeenRequest.expires_at) >= now)).all()
        with self._lock:
            self._seen.update({row.digest: row.expires_at for row in rows})
        return len(rows)

    def _insert(self, rows: dict[str, datetime]) -> ReturningInsert[tuple[str]]:
        table: Table = SQLModel.metadata.tables[SeenRequest.__tablename__]
        insert = postgresql_insert if self.db.engine.dialect.name == "postgresql" else sqlite_insert
        return insert(table).values([{"digest": k, "expires_at": v} for k, v in rows.items()]) \
            .on_conflict_do_nothing(index_elements=["digest"]).returning(table.c.digest)


def _due(last: datetime | None, now: datetime) -> bool:
    return last is None or now - last >= PRUNE_EVERY
