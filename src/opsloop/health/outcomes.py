"""Renewal outcomes: what each renewal came to, and the retention they add up to.

They come in two ways, validated alike and stored all or nothing:
- `opsloop accounts outcomes FILE`: CSV with the header `tenant,date,outcome,arr_after`;
- `POST /hooks/signals` with kind `renewal`: `{"tenant": "acme", "kind": "renewal",
  "outcome": "renewed", "value": 480000, "at": "2027-01-31T00:00:00Z"}` (`value` is the ARR after).

`outcome` is `renewed`, `expanded`, `contracted` or `churned`; a churned account's ARR after is
0 (it may be left blank), any other outcome's is more than 0. `date` is the renewal date, at most
a year ahead (an early renewal is signed before its date). The ARR before is the catalog's ARR
when the outcome is first recorded; recording the same tenant and date again replaces the
outcome and keeps that ARR before.

Net revenue retention (NRR) is the ARR after over the ARR before of the renewals in a period;
gross retention the same with each renewal's ARR after capped at its ARR before (expansion left
out). Periods are calendar quarters of the renewal date.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import select as sa_select  # sqlmodel's is typed for at most four columns
from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.errors import ConfigError
from opsloop.health.models import CHURNED, RenewalOutcome
from opsloop.models import Account
from opsloop.policy_loader import format_location

COLUMNS = ("tenant", "date", "outcome", "arr_after")
MAX_AHEAD = timedelta(days=366)
MAX_ROWS = 100_000


class OutcomeIn(BaseModel):
    """One outcome as a file row or a signal gives it; validated before anything is stored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tenant: Annotated[str, Field(min_length=1, max_length=64)]
    date: date
    outcome: Literal["renewed", "expanded", "contracted", "churned"]
    arr_after: Annotated[int, Field(ge=0, le=10**12)] | None = None

    @field_validator("arr_after", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _consistent(self) -> OutcomeIn:
        if self.outcome == CHURNED:
            if self.arr_after not in (None, 0):
                raise ValueError(f"arr_after: a churned account keeps no ARR (got {self.arr_after}); "
                                 "write 0 or leave it blank")
            self.arr_after = 0
        elif not self.arr_after:
            raise ValueError(f"arr_after: a {self.outcome} account has ARR after its renewal; give it")
        return self


@dataclass(frozen=True)
class Outcome:
    tenant: str
    date: date
    outcome: str
    arr_after: int
    where: str  # `row 3` of a file, `[2]` of a request: what an error names


@dataclass(frozen=True)
class Recorded:
    created: int
    updated: int
    unchanged: int


def validate(raw: dict[str, Any], *, where: str, today: date) -> Outcome:
    """One outcome, or ValueError saying `where: field: reason`."""
    try:
        row = OutcomeIn.model_validate(raw)
    except ValidationError as error:
        problem = error.errors()[0]
        field = format_location(problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown column"
        raise ValueError(f"{where}: {message}" if field == "(top level)" else
                         f"{where}: {field}: {message}") from None
    if row.date > today + MAX_AHEAD:
        raise ValueError(f"{where}: date: {row.date.isoformat()} is more than a year ahead")
    assert row.arr_after is not None
    return Outcome(row.tenant, row.date, row.outcome, row.arr_after, where)


def read_file(path: Path, *, today: date) -> list[Outcome]:
    """Every row of an outcomes CSV, or ConfigError naming each bad row (nothing is stored)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") from None
    reader = csv.DictReader(io.StringIO(text))
    header = tuple(reader.fieldnames or ())
    if sorted(header) != sorted(COLUMNS):
        got = ",".join(header) or "none"
        raise ConfigError(f"{path}: the header must be {','.join(COLUMNS)} (got {got})")
    out: list[Outcome] = []
    problems: list[str] = []
    seen: dict[tuple[str, date], int] = {}
    for number, raw in enumerate(reader, start=2):  # the header is line 1
        if number > MAX_ROWS + 1:
            raise ConfigError(f"{path}: more than {MAX_ROWS} rows; split the file")
        if None in raw or None in raw.values():
            problems.append(f"{path}: row {number}: expected {len(COLUMNS)} columns")
            continue
        try:
            outcome = validate(dict(raw), where=f"row {number}", today=today)
        except ValueError as error:
            problems.append(f"{path}: {error}")
            continue
        first = seen.setdefault((outcome.tenant, outcome.date), number)
        if first != number:
            problems.append(f"{path}: row {number}: {outcome.tenant} {outcome.date} is also row {first}")
        out.append(outcome)
    if problems:
        raise ConfigError("\n".join(problems))
    return out


def unknown_tenants(session: Session, outcomes: Sequence[Outcome]) -> list[Outcome]:
    known = set(session.exec(select(Account.id).where(col(Account.id).in_({o.tenant for o in outcomes}))))
    return [o for o in outcomes if o.tenant not in known]


def store(session: Session, outcomes: Sequence[Outcome], *, now: datetime, source: str,
          actor: str) -> Recorded:
    """Record outcomes in the caller's transaction (which holds the audit chain; tenants checked)."""
    if not outcomes:
        return Recorded(0, 0, 0)
    tenants = {o.tenant for o in outcomes}
    arr = dict(session.exec(select(Account.id, Account.arr).where(col(Account.id).in_(tenants))).all())
    existing = {(r.tenant_id, r.date): r for r in session.exec(
        select(RenewalOutcome).where(col(RenewalOutcome.tenant_id).in_(tenants),
                                     col(RenewalOutcome.date).in_({o.date for o in outcomes})))}
    created = updated = unchanged = 0
    for o in outcomes:
        row = existing.get((o.tenant, o.date))
        after = {"date": o.date.isoformat(), "outcome": o.outcome, "arr_after": o.arr_after}
        if row is None:
            row = RenewalOutcome(tenant_id=o.tenant, date=o.date, outcome=o.outcome, arr_before=arr[o.tenant],
                                 arr_after=o.arr_after, source=source[:64], recorded_at=now)
            session.add(row)
            existing[(o.tenant, o.date)] = row
            created += 1
            audit.record(session, at=now, actor=actor, action="account.outcome",
                         subject=f"account:{o.tenant}",
                         after={**after, "arr_before": row.arr_before, "source": source})
        elif (row.outcome, row.arr_after) == (o.outcome, o.arr_after):
            unchanged += 1
        else:
            before = {"outcome": row.outcome, "arr_after": row.arr_after}
            row.outcome, row.arr_after, row.source, row.recorded_at = o.outcome, o.arr_after, source[:64], now
            session.add(row)
            updated += 1
            audit.record(session, at=now, actor=actor, action="account.outcome",
                         subject=f"account:{o.tenant}", before=before, after={**after, "source": source})
    session.flush()
    return Recorded(created, updated, unchanged)


# --------------------------------------------------------------------------- retention


@dataclass
class Retention:
    renewals: int = 0
    arr_before: int = 0
    arr_after: int = 0
    kept: int = 0  # ARR after, capped at the ARR before: what gross retention counts
    by_outcome: dict[str, int] | None = None

    def add(self, outcome: str, before: int, after: int) -> None:
        self.renewals += 1
        self.arr_before += before
        self.arr_after += after
        self.kept += min(before, after)
        counts = self.by_outcome if self.by_outcome is not None else {}
        counts[outcome] = counts.get(outcome, 0) + 1
        self.by_outcome = counts

    @property
    def nrr(self) -> float | None:
        return self.arr_after / self.arr_before if self.arr_before else None

    @property
    def grr(self) -> float | None:
        return self.kept / self.arr_before if self.arr_before else None


ALL = "all"


def quarter(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def retention(session: Session, *, since: date, until: date) -> dict[tuple[str, str], Retention]:
    """Retention of the renewals dated since..until (inclusive), keyed (tier, quarter); `all`
    stands for every tier or every quarter, so (`all`, `all`) is the whole period."""
    out: dict[tuple[str, str], Retention] = {}
    columns = (col(Account.tier), col(RenewalOutcome.date), col(RenewalOutcome.outcome),
               col(RenewalOutcome.arr_before), col(RenewalOutcome.arr_after))
    rows = session.execute(
        sa_select(*columns).join(Account, col(Account.id) == col(RenewalOutcome.tenant_id))
        .where(col(RenewalOutcome.date) >= since, col(RenewalOutcome.date) <= until)).all()
    for tier, day, outcome, before, after in rows:
        period = quarter(day)
        for key in {(ALL, ALL), (tier, ALL), (ALL, period), (tier, period)}:
            out.setdefault(key, Retention()).add(outcome, before, after)
    return out


def import_file(db: Database, clock: Clock, path: Path, *, zone: ZoneInfo, actor: str) -> Recorded:
    """`opsloop accounts outcomes FILE`: every row or none; an unknown tenant names its row."""
    now = clock.now()
    found = read_file(path, today=now.astimezone(zone).date())
    with db.transaction() as session:
        audit.lock_chain(session)  # the lock order every writer keeps
        unknown = unknown_tenants(session, found)
        if unknown:
            raise ConfigError("\n".join(f"{path}: {o.where}: tenant: unknown tenant {o.tenant!r}: add it "
                                        "to the account catalog (opsloop accounts import FILE)"
                                        for o in unknown))
        return store(session, found, now=now, source=path.name, actor=actor)
