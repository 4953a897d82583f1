"""Health signals: validated as a whole, then stored as a time series per tenant.

A request carries one signal or a list:
`{"tenant": "acme", "kind": "usage", "value": -0.3, "at": "2026-11-22T08:00:00Z"}`.

- `usage`: the usage trend, -1..+1: the relative change of active use against the
  tenant's own baseline (-0.3 = down 30%; +1 = doubled or more; clip beyond).
- `nps`: the latest Net Promoter Score, -100..100.
- `tickets`: support tickets opened that day (a count per day), 0..100000.
- `renewal`: a renewal outcome (`opsloop.health.outcomes`): `outcome` is renewed, expanded,
  contracted or churned, `value` the ARR after it, `at` the renewal date (its date where it is
  given, at most a year ahead).

`at` is an ISO 8601 time with a zone, not more than an hour ahead. It is all
or nothing: one bad signal (or an unknown tenant) stores none of the request,
and the error names it (`[2].value`, `[0].tenant`). The same (tenant, kind,
at) sent again replaces its value, so a retried request is harmless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from sqlmodel import Session, col, select

from opsloop.errors import InvalidInput, NotFound
from opsloop.health import outcomes
from opsloop.health.models import HealthSignal
from opsloop.health.outcomes import Outcome
from opsloop.models import Account

KINDS = ("usage", "nps", "tickets", "renewal")
RENEWAL = "renewal"
RANGES: dict[str, tuple[float, float]] = {"usage": (-1.0, 1.0), "nps": (-100.0, 100.0),
                                          "tickets": (0.0, 100_000.0), RENEWAL: (0.0, 1e12)}
MAX_SIGNALS = 5000  # per request; the HTTP body limit (1 MiB) keeps it near this anyway
MAX_AHEAD = timedelta(hours=1)  # clock skew allowed for `at`


class SignalError(InvalidInput):
    """A signal that cannot be stored; `field` is where (`[1].value`), for the HTTP answer."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


class UnknownTenant(NotFound):
    def __init__(self, tenant: str, *, field: str) -> None:
        super().__init__(f"{field}: unknown tenant {tenant!r}: add it to the account catalog "
                         "(opsloop accounts import FILE)")
        self.field = field
        self.tenant = tenant


class SignalIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)

    tenant: str
    kind: str
    value: float
    at: datetime
    outcome: str | None = None  # renewal signals only

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str) -> str:
        if not value.strip() or len(value) > 64:
            raise ValueError("a tenant id of 1 to 64 characters")
        return value.strip()

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"unknown kind {value!r} (known: {', '.join(KINDS)})")
        return value

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("a time with a zone, e.g. 2026-11-22T08:00:00Z")
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range once in UTC (years 1 to 9999)") from None

    @model_validator(mode="after")
    def _in_range(self) -> SignalIn:
        if (self.outcome is not None) != (self.kind == RENEWAL):
            raise _OutcomeError("a renewal signal needs an outcome (renewed, expanded, contracted or churned)"
                                if self.kind == RENEWAL else "only a renewal signal has an outcome")
        low, high = RANGES[self.kind]
        if not math.isfinite(self.value) or not low <= self.value <= high:
            raise _RangeError(f"{self.kind} is {_num(low)}..{_num(high)} (got {self.value})")
        return self


class _RangeError(ValueError):
    """Raised from the model validator; reported at `.value` rather than at the signal."""


class _OutcomeError(ValueError):
    """Raised from the model validator; reported at `.outcome`."""


@dataclass(frozen=True)
class Signal:
    tenant: str
    kind: str
    value: float
    at: datetime
    outcome: Outcome | None = None  # renewal signals: the outcome they record


def parse(raw: Any, *, now: datetime) -> list[Signal]:
    """Validate one signal (a mapping) or a list of them; raise SignalError naming the first problem."""
    many = isinstance(raw, list)
    items = raw if many else [raw]
    if not items:
        raise SignalError("send at least one signal", field="")
    if len(items) > MAX_SIGNALS:
        raise SignalError(f"at most {MAX_SIGNALS} signals per request (got {len(items)})", field="")
    out: list[Signal] = []
    for index, item in enumerate(items):
        where = f"[{index}]" if many else ""
        if not isinstance(item, dict):
            raise SignalError("a signal is an object with tenant, kind, value and at",
                              field=where or "(body)")
        try:
            signal = SignalIn.model_validate(item)
        except ValidationError as error:
            problem = error.errors()[0]
            loc = [str(p) for p in problem["loc"]]
            message = problem["msg"].removeprefix("Value error, ")
            if problem["type"] == "extra_forbidden":
                message = "unknown field"
            if not loc:  # the model checks run on the whole signal: about its value or its outcome
                loc = ["outcome" if "outcome" in message else "value"]
            raise SignalError(message, field=".".join([where, *loc]).lstrip(".")) from None
        if signal.kind == RENEWAL:
            out.append(_renewal(signal, where, now))
            continue
        if signal.at > now + MAX_AHEAD:
            raise SignalError(f"{signal.at.isoformat()} is in the future", field=f"{where}.at".lstrip("."))
        out.append(Signal(signal.tenant, signal.kind, signal.value, signal.at.astimezone(UTC)))
    return out


def _renewal(signal: SignalIn, where: str, now: datetime) -> Signal:
    if signal.value != int(signal.value):
        raise SignalError(f"the ARR after a renewal is a whole amount (got {signal.value})",
                          field=f"{where}.value".lstrip("."))
    raw = {"tenant": signal.tenant, "date": signal.at.date(), "outcome": signal.outcome,
           "arr_after": int(signal.value)}
    try:
        outcome = outcomes.validate(raw, where=where, today=now.date())
    except ValueError as error:
        field, _, message = str(error).removeprefix(f"{where}: ").partition(": ")
        field = {"date": "at", "arr_after": "value"}.get(field, field)
        raise SignalError(message, field=f"{where}.{field}".lstrip(".")) from None
    return Signal(signal.tenant, RENEWAL, signal.value, signal.at.astimezone(UTC), outcome)


def store(session: Session, signals: list[Signal], *, now: datetime, source: str) -> list[str]:
    """Store validated signals (replacing equal tenant/kind/at) and renewal outcomes; returns the
    tenants touched, sorted.

    Unknown tenants raise UnknownTenant naming the first one, before anything is written.
    """
    tenants = sorted({s.tenant for s in signals})
    known = set(session.exec(select(Account.id).where(col(Account.id).in_(tenants))))
    for index, signal in enumerate(signals):
        if signal.tenant not in known:
            where = f"[{index}].tenant" if len(signals) > 1 else "tenant"
            raise UnknownTenant(signal.tenant, field=where)
    renewals = [s.outcome for s in signals if s.outcome is not None]
    outcomes.store(session, renewals, now=now, source=source, actor=f"system:{source}")
    signals = [s for s in signals if s.outcome is None]
    latest: dict[tuple[str, str, datetime], Signal] = {}
    for signal in signals:  # the same key twice in one request: the later one wins
        latest[(signal.tenant, signal.kind, signal.at)] = signal
    existing = {
        (row.tenant_id, row.kind, row.at): row
        for row in session.exec(select(HealthSignal).where(
            col(HealthSignal.tenant_id).in_(tenants),
            col(HealthSignal.at).in_({s.at for s in latest.values()})))
    }
    for key, signal in latest.items():
        row = existing.get(key)
        if row is None:
            session.add(HealthSignal(tenant_id=signal.tenant, kind=signal.kind, value=signal.value,
                                     at=signal.at, received_at=now, source=source))
        elif row.value != signal.value:
            row.value, row.received_at, row.source = signal.value, now, source
            session.add(row)
    session.flush()
    return tenants


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
