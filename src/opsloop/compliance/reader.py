"""Reading the audit chain back as raw text, so that nothing stored can make a reader crash.

Someone with write access to the database can put anything in a row: JSON
that does not parse, a date that is no date, bytes that are not UTF-8. The
ORM would raise on such a row; this reader asks the database for every column
as text (SQLite: as bytes) and parses it here, turning each defect into an
`Unreadable` that names the event and why. PostgreSQL databases created with
the SQL_ASCII encoding hand back bytes too; both are decoded strictly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from opsloop.compliance.chain import canonical, sha256
from opsloop.models import AuditEvent

BATCH = 1000
_TEXT_COLUMNS = ("at", "actor", "action", "subject", "before", "after", "personal", "prev_hash", "hash")


@dataclass(frozen=True)
class Link:
    """One event as stored, every field parsed."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    personal: list[str] | None
    prev_hash: str
    hash: str

    def canonical(self) -> bytes:
        return canonical(seq=self.seq, at=self.at, actor=self.actor, action=self.action,
                         subject=self.subject, before=self.before, after=self.after,
                         personal=self.personal, prev_hash=self.prev_hash)

    def digest(self) -> str:
        return sha256(self.canonical())


@dataclass(frozen=True)
class Unreadable:
    """An event whose stored fields cannot be parsed; `why` says which and how."""

    seq: int
    why: str
    prev_hash: str | None  # when those two could still be read, the chain walk goes on from them
    hash: str | None


@dataclass(frozen=True)
class SideRow:
    seq: int
    pointer: str
    salt: str | None
    value: str | None
    erased_in: int | None
    why: str | None = None  # set when the row could not be read


class _Bad(ValueError):
    pass


def selects(session: Session, table: str, columns: tuple[str, ...]) -> str:
    """How to ask for each column so that whatever is stored comes back as text or bytes.

    SQLite hands back text it cannot decode as an error; as a BLOB it hands back
    the bytes. PostgreSQL turns any type into text (`infinity` included, which
    no Python datetime holds), except a column someone turned into `bytea`:
    that one is read as the bytes it is.
    """
    if session.get_bind().dialect.name == "sqlite":
        return ", ".join(f'CAST("{c}" AS BLOB)' for c in columns)
    types = dict(session.execute(text(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = :table AND table_schema = current_schema()"), {"table": table}).all())
    return ", ".join(f'"{c}"' if types.get(c) == "bytea" else f'CAST("{c}" AS TEXT)' for c in columns)


def _text(value: Any, column: str, *, nullable: bool = False) -> str | None:
    if value is None:
        if nullable:
            return None
        raise _Bad(f"`{column}` is empty (NULL)")
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as error:
            raise _Bad(f"`{column}` is not UTF-8 text (byte 0x{bytes(value)[error.start]:02x} "
                       f"at {error.start})") from None
    return str(value)


def _int(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _Bad(f"`erased_in` is not an event number: {_show(str(value))}") from None


def _json(raw: str | None, column: str, kind: type) -> Any:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as error:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "nested too deeply"
        raise _Bad(f"`{column}` is not valid JSON ({reason}): {_show(raw)}") from None
    if value is not None and not isinstance(value, kind):
        raise _Bad(f"`{column}` is JSON but not {'an object' if kind is dict else 'a list'}: {_show(raw)}")
    return value


def _date(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise _Bad(f"`at` is not a date: {_show(raw)}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _show(raw: str, limit: int = 60) -> str:
    return repr(raw if len(raw) <= limit else raw[:limit] + "…")


def _parse(row: Any) -> Link | Unreadable:
    seq = int(row[0])
    fields = dict(zip(_TEXT_COLUMNS, row[1:], strict=True))
    prev_hash = hash_ = None
    try:
        prev_hash = _text(fields["prev_hash"], "prev_hash")
        hash_ = _text(fields["hash"], "hash")
        personal = _json(_text(fields["personal"], "personal", nullable=True), "personal", list)
        if personal is not None and not all(isinstance(p, str) for p in personal):
            raise _Bad("`personal` must list JSON Pointers (text)")
        return Link(
            seq=seq,
            at=_date(_text(fields["at"], "at") or ""),
            actor=_text(fields["actor"], "actor") or "",
            action=_text(fields["action"], "action") or "",
            subject=_text(fields["subject"], "subject") or "",
            before=_json(_text(fields["before"], "before", nullable=True), "before", dict),
            after=_json(_text(fields["after"], "after", nullable=True), "after", dict),
            personal=personal,
            prev_hash=prev_hash or "",
            hash=hash_ or "",
        )
    except _Bad as bad:
        return Unreadable(seq, str(bad), prev_hash, hash_)


def seq_range(session: Session, *, since: datetime | None = None,
              until: datetime | None = None) -> tuple[int, int] | None:
    """The first and last seq of events at or after `since` and before `until` (None: none)."""
    query = select(func.min(AuditEvent.seq), func.max(AuditEvent.seq))
    if since is not None:
        query = query.where(col(AuditEvent.at) >= since)
    if until is not None:
        query = query.where(col(AuditEvent.at) < until)
    first, last = session.exec(query).one()
    return None if first is None else (int(first), int(last))


def events(session: Session, *, first: int = 1, last: int | None = None,
           batch: int = BATCH) -> Iterator[list[Link | Unreadable]]:
    """Events with first <= seq <= last, in seq order, in batches (keyset pages: no open cursor)."""
    columns = selects(session, "audit_events", _TEXT_COLUMNS)
    bound = "" if last is None else " AND seq <= :last"
    query = text(f"SELECT seq, {columns} FROM audit_events WHERE seq >= :first{bound} "
                 "ORDER BY seq LIMIT :batch")
    while True:
        params: dict[str, Any] = {"first": first, "batch": batch}
        if last is not None:
            params["last"] = last
        rows = session.execute(query, params).all()
        if not rows:
            return
        yield [_parse(row) for row in rows]
        first = int(rows[-1][0]) + 1


def side_rows(session: Session, first: int, last: int) -> dict[tuple[int, str], SideRow]:
    """The personal data of events first..last, by (seq, pointer)."""
    columns = selects(session, "audit_personal", ("pointer", "salt", "value"))
    rows = session.execute(text(f"SELECT seq, {columns}, erased_in FROM audit_personal "
                                "WHERE seq >= :first AND seq <= :last"),
                           {"first": first, "last": last}).all()
    out: dict[tuple[int, str], SideRow] = {}
    for seq, pointer, salt, value, erased_in in rows:
        try:
            key = _text(pointer, "pointer") or ""
        except _Bad:
            continue  # a row no event can name; nothing points at it
        try:
            out[(int(seq), key)] = SideRow(int(seq), key, _text(salt, "salt", nullable=True),
                                           _text(value, "value", nullable=True), _int(erased_in))
        except _Bad as bad:
            out[(int(seq), key)] = SideRow(int(seq), key, None, None, None, why=str(bad))
    return out


def erased_rows(session: Session) -> list[tuple[int, str, int | None, str | None]]:
    """(seq, pointer, erased_in, why) of every side row that is cleared or claims an erasure."""
    rows = session.execute(text(f"SELECT seq, {selects(session, 'audit_personal', ('pointer',))}, erased_in "
                                "FROM audit_personal "
                                "WHERE erased_in IS NOT NULL OR salt IS NULL OR value IS NULL "
                                "ORDER BY seq")).all()
    out: list[tuple[int, str, int | None, str | None]] = []
    for seq, pointer, erased_in in rows:
        try:
            out.append((int(seq), _text(pointer, "pointer") or "", _int(erased_in), None))
        except _Bad as bad:
            out.append((int(seq), "?", None, str(bad)))
    return out
