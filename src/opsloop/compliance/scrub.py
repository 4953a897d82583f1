"""Finding and removing a piece of text (an email) in every table, whatever feature made the table.

Every text and JSON column of every table is searched case-insensitively
(JSON also in its `\\uXXXX`-escaped form, as SQLite stores it). `scrub`
replaces each occurrence by `[erased]` — inside longer text too, and inside
JSON values and keys — except where a row's identity or integrity rests on the
text: primary keys, the hashed audit chain (its personal values are sealed
apart and erased there), pinned runbook snapshots (code, with a content hash).
`find` lists what is left afterwards, so an erasure can say what it could not
remove and why.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, String, Table, Text, TypeDecorator, cast, func, or_
from sqlmodel import Session, SQLModel

import opsloop.schema  # noqa: F401 - every table, so that none is left out

ERASED = "[erased]"
# where the text may not be rewritten, and what the erasure says about it instead
UNTOUCHABLE = {
    "audit_events": "hashed content of the audit chain (written before personal data was sealed apart, "
                    "or under a key not treated as personal)",
    "audit_personal": "sealed audit values (erased through their own path)",
    "runbook_snapshots": "a pinned runbook snapshot: runbooks are code; edit the runbook file",
}


@dataclass(frozen=True)
class Place:
    table: str
    column: str
    key: tuple[Any, ...]

    def describe(self) -> str:
        where = ", ".join(str(k) for k in self.key)
        reason = UNTOUCHABLE.get(self.table, "a key column")
        return f"{self.table}.{self.column} ({where}): {reason}"


def _columns() -> list[tuple[Table, Column[Any]]]:
    out = []
    for table in SQLModel.metadata.sorted_tables:
        for column in table.columns:
            kind = column.type.impl_instance if isinstance(column.type, TypeDecorator) else column.type
            if isinstance(kind, String | Text | JSON):  # sqlmodel's AutoString decorates String
                out.append((table, column))
    return out


def _patterns(needle: str) -> list[str]:
    escaped = json.dumps(needle)[1:-1]  # how SQLite's JSON text spells it (ASCII, escapes)
    def like(text: str) -> str:
        return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return sorted({like(needle), like(escaped)})


def matching(table: Table, column: Column[Any], needles: list[str]) -> Any:
    text = func.lower(cast(column, Text()))
    return or_(*(text.like(p, escape="\\") for needle in needles for p in _patterns(needle)))


def find(session: Session, needles: list[str]) -> list[Place]:
    """Every (table, column, row) that still holds one of `needles`."""
    places = []
    for table, column in _columns():
        keys = list(table.primary_key.columns)
        for row in session.execute(table.select().with_only_columns(*keys)
                                   .where(matching(table, column, needles))):
            places.append(Place(table.name, column.name, tuple(row)))
    return places


def scrub(session: Session, needles: list[str]) -> Counter[str]:
    """Replace every occurrence of `needles` where that is allowed; returns rows changed per table."""
    changed: Counter[str] = Counter()
    longest_first = sorted(needles, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(n) for n in longest_first), re.IGNORECASE)
    for table, column in _columns():
        if table.name in UNTOUCHABLE or column.primary_key:
            continue
        keys = list(table.primary_key.columns)
        rows = session.execute(table.select().with_only_columns(*keys, column)
                               .where(matching(table, column, needles))).all()
        for row in rows:
            new = _replace(row[-1], pattern)
            if new == row[-1]:
                continue
            condition = [key == value for key, value in zip(keys, row[:-1], strict=True)]
            session.execute(table.update().where(*condition).values({column.name: new}))
            changed[table.name] += 1
    return changed


def _replace(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(ERASED, value)
    if isinstance(value, dict):
        return {_replace(k, pattern): _replace(v, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, pattern) for v in value]
    return value
