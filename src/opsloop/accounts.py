"""The account catalog: customer accounts (tenants), loaded from CSV or YAML."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlmodel import Session, select

from opsloop import audit
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.errors import ConfigError
from opsloop.models import Account
from opsloop.policy_loader import format_location, load_yaml
from opsloop.tenant_windows import parse as parse_window
from opsloop.types import Tier

COLUMNS = ("id", "name", "tier", "arr", "renewal_date", "csm", "sales_owner",
           "support_channel", "contact_email", "region", "webhook_url", "executive_sponsor", "window")


class AccountRow(BaseModel):
    """One account as the catalog file writes it; validated before anything is stored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    tier: Tier
    arr: Annotated[int, Field(ge=0)] = 0
    renewal_date: date | None = None
    csm: str | None = None
    sales_owner: str | None = None
    support_channel: str | None = None
    contact_email: Annotated[str | None, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] = None
    region: str | None = None
    webhook_url: Annotated[str | None, Field(pattern=r"^https://[^\s]+$")] = None  # optional, https only
    executive_sponsor: Annotated[str | None, Field(pattern=r"^[UW][A-Z0-9]+$")] = None  # a Slack user id
    # the tenant's own maintenance window, e.g. "sun 02:00-06:00" (opsloop.tenant_windows), local time
    window: Annotated[str | None, Field(max_length=64)] = None

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        return None if value is None else parse_window(value).text


class ImportResult(NamedTuple):
    """How many of a file's accounts an import created, updated and left as they were."""

    created: int
    updated: int
    unchanged: int


@dataclass(frozen=True)
class SeedResult:
    """What starting with the policy's accounts file did: seeded an empty catalog, or left it alone."""

    seeded: ImportResult | None  # None: the catalog already held accounts, so the file changed nothing
    differing: list[str]  # ids whose row in the file is not what the catalog holds (new ones included)


def read_catalog(path: Path) -> list[AccountRow]:
    """Parse and validate a catalog file; every problem names the file, the row and the field."""
    if path.suffix.lower() == ".csv":
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as error:
            raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
        reader = csv.DictReader(io.StringIO(text))
        header = tuple(reader.fieldnames or ())
        if set(header) - set(COLUMNS) or "id" not in header or "name" not in header:
            raise ConfigError(f"{path}: the header must be {','.join(COLUMNS)} (got {','.join(header)})")
        raw: Any = list(reader)
        first_row = 2  # the header is line 1
    else:
        raw = load_yaml(path) or []
        first_row = 1
        if not isinstance(raw, list):
            raise ConfigError(f"{path}: the catalog must be a list of accounts")
    rows, problems, seen = [], [], set()
    for number, entry in enumerate(raw, start=first_row):
        if not isinstance(entry, dict):
            problems.append(f"{path}: row {number}: an account must be a mapping")
            continue
        try:
            row = AccountRow.model_validate(entry)
        except ValidationError as error:
            for p in error.errors():
                message = "unknown column" if p["type"] == "extra_forbidden" else p["msg"]
                problems.append(f"{path}: row {number}: {format_location(p['loc'])}: {message}")
            continue
        if row.id in seen:
            problems.append(f"{path}: row {number}: id {row.id!r} appears twice")
        seen.add(row.id)
        rows.append(row)
    if problems:
        raise ConfigError("\n".join(problems))
    return rows


def import_catalog(db: Database, clock: Clock, path: Path, *, actor: str) -> ImportResult:
    """Create or update every account of the file in one transaction (all or nothing)."""
    rows = read_catalog(path)
    now = clock.now()
    created = updated = unchanged = 0
    with db.transaction() as session:
        audit.lock_chain(session)  # the lock order every writer keeps (see opsloop.audit)
        for row in rows:
            outcome = _upsert(session, row, now, actor)
            created += outcome == "created"
            updated += outcome == "updated"
            unchanged += outcome == "unchanged"
    return ImportResult(created, updated, unchanged)


def seed_catalog(db: Database, clock: Clock, path: Path, *, actor: str) -> SeedResult:
    """The policy's accounts file seeds an EMPTY catalog, and only that.

    Once the catalog holds an account, the catalog (changed by `opsloop accounts
    import`) is the one source of truth: a start never re-applies the file, so no
    import is ever undone by a restart. What the file says differently is returned,
    for the start to warn about it.
    """
    rows = read_catalog(path)
    now = clock.now()
    with db.transaction() as session:
        audit.lock_chain(session)  # replicas starting together: the second sees the first one's seed
        if session.exec(select(Account.id).limit(1)).first() is None:
            for row in rows:
                _upsert(session, row, now, actor)
            return SeedResult(ImportResult(len(rows), 0, 0), [])
        differing = []
        for row in rows:
            account = session.get(Account, row.id)
            values = row.model_dump()
            if account is None or any(getattr(account, k) != v for k, v in values.items()):
                differing.append(row.id)
        return SeedResult(None, differing)


def _upsert(session: Session, row: AccountRow, now: Any, actor: str) -> str:
    values = row.model_dump()
    account = session.get(Account, row.id, with_for_update=True)
    if account is None:
        session.add(Account(**values, updated_at=now))
        audit.record(session, at=now, actor=actor, action="account.created", subject=f"account:{row.id}",
                     after=values)
        return "created"
    before = {k: getattr(account, k) for k in values}
    if before == values:
        return "unchanged"
    for k, v in values.items():
        setattr(account, k, v)
    account.updated_at = now
    session.add(account)
    audit.record(session, at=now, actor=actor, action="account.updated", subject=f"account:{row.id}",
                 before={k: v for k, v in before.items() if values[k] != v},
                 after={k: v for k, v in values.items() if before[k] != v})
    return "updated"
