"""The keys of an `http` step that runs once per tenant (`foreach: tenants`), validated strictly.

    - id: patch
      type: http
      foreach: tenants
      select: {tier: [smb, mid-market], region: eu, exclude: [initech]}   # or {ids: [...]}, {band: [...]}
      waves: [{name: canary, size: 1}, {percent: 50, approval: {approvers: role:approver}}, {rest: true}]
      order_by: tier
      pause_between: 10m
      max_concurrency: 4
      max_errors: 1            # or "5%": errors tolerated before the rollout halts
      deadline: 24h            # an SLA clock on the work item
      tenant_windows: respect  # call a tenant only in its catalog maintenance window (default: ignore)
      request: {...}           # templates see `tenant` (its public catalog fields)
      rollback: {...}          # the same for "Roll back", per tenant already done

This module knows only the shape; `opsloop.rollouts.service` runs it.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from opsloop.fields import Duration, Strict
from opsloop.types import Tier

TenantId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Band = Literal["healthy", "watch", "at-risk"]
OrderBy = Literal["tier", "health", "renewal_date", "id"]
Approver = Annotated[str, Field(pattern=r"^(role:[a-z][a-z0-9_-]*|[UWS][A-Z0-9]+)$")]
MAX_TARGETS = 100_000


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Selector(Strict):
    """Which tenants of the account catalog a rollout calls; every key given must hold (AND),
    any value of a list may (OR); `exclude` always wins."""

    ids: Annotated[list[TenantId], BeforeValidator(_one_or_many)] | None = None
    tier: Annotated[list[Tier], BeforeValidator(_one_or_many)] | None = None
    region: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=32)]], BeforeValidator(_one_or_many)]
        | None
    ) = None
    band: Annotated[list[Band], BeforeValidator(_one_or_many)] | None = None
    exclude: Annotated[list[TenantId], BeforeValidator(_one_or_many)] = []


class WaveApproval(Strict):
    """People who must approve a wave before it starts: the same rules as an `approval` step (distinct
    approvers, never the person who started the run, one reject ends it), bound to the wave's requests."""

    approvers: Annotated[list[Approver], BeforeValidator(_one_or_many), Field(min_length=1)]
    min_approvals: Annotated[int, Field(ge=1, le=10)] = 1
    expires_after: Duration | None = None


class Wave(Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")] | None = None
    size: Annotated[int, Field(ge=1, le=MAX_TARGETS)] | None = None
    percent: Annotated[float, Field(gt=0, le=100)] | None = None
    rest: bool = False
    approval: WaveApproval | None = None

    @model_validator(mode="after")
    def _one_size(self) -> Wave:
        given = [k for k in ("size", "percent") if getattr(self, k) is not None] + (
            ["rest"] if self.rest else []
        )
        if len(given) != 1:
            raise ValueError("give exactly one of size: N, percent: P and rest: true")
        return self


def _max_errors(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError('max_errors is a count (2) or a share of the targets ("5%")')
    if isinstance(value, int):
        return str(value)
    return value


class Fleet(Strict):
    """The rollout keys of one `foreach: tenants` step (see the module docstring)."""

    select: Selector = Selector()
    waves: Annotated[list[Wave], Field(min_length=1, max_length=20)] = [Wave(rest=True)]
    order_by: OrderBy = "id"
    pause_between: Duration = timedelta(0)
    max_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    max_errors: Annotated[str, BeforeValidator(_max_errors)] = "0"
    deadline: Duration | None = None
    tenant_windows: Literal["ignore", "respect"] = "ignore"

    @field_validator("max_errors")
    @classmethod
    def _budget(cls, value: str) -> str:
        if re.fullmatch(r"\d{1,6}|\d{1,3}(\.\d+)?%", value) is None or (
            value.endswith("%") and float(value[:-1]) > 100
        ):
            raise ValueError(f'{value!r}: write a count (2) or a share of the targets ("5%")')
        return value

    @model_validator(mode="after")
    def _last_is_rest(self) -> Fleet:
        if not self.waves[-1].rest:
            raise ValueError("waves: the last wave must be {rest: true}, so no tenant is left out")
        if any(w.rest for w in self.waves[:-1]):
            raise ValueError("waves: only the last wave can be {rest: true}")
        names = [w.name for w in self.waves if w.name]
        if len(names) != len(set(names)):
            raise ValueError("waves: two waves have the same name")
        return self

    def allowed_errors(self, targets: int) -> int:
        """How many errors the budget tolerates; one more halts the rollout."""
        if self.max_errors.endswith("%"):
            return math.floor(targets * float(self.max_errors[:-1]) / 100)
        return int(self.max_errors)

    def wave_sizes(self, targets: int) -> list[int]:
        """How many tenants each wave takes, in order (a wave may be empty when few tenants are left)."""
        sizes: list[int] = []
        left = targets
        for wave in self.waves:
            if wave.rest:
                want = left
            elif wave.size is not None:
                want = wave.size
            else:
                assert wave.percent is not None
                want = max(1, math.ceil(targets * wave.percent / 100))
            take = min(want, left)
            sizes.append(take)
            left -= take
        return sizes

    def wave_name(self, index: int) -> str:
        wave = self.waves[index]
        if wave.name:
            return wave.name
        if wave.rest:
            return "rest"
        return f"wave {index + 1}"
