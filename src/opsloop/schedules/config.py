"""The `schedules` section of the policy file (owned here; `opsloop.policy` imports it).

schedules:
  cert-rotation:
    cron: "0 4 * * mon"            # five fields, in `timezone` (default: the policy's)
    timezone: Europe/Berlin
    runbook: cert-rotation
    inputs: {days: 30}
    catch_up: latest               # a tick missed while nobody ran: run once (latest) or not (skip)
    title: "Weekly certificate rotation"
    severity: sev4
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError
from pydantic import Field, field_validator

from opsloop.fields import Strict, TimeZone
from opsloop.types import Severity

InputName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class Schedule(Strict):
    cron: str
    timezone: TimeZone | None = None
    runbook: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=64)]
    inputs: dict[InputName, str | int | bool] = {}
    catch_up: Literal["latest", "skip"] = "latest"
    title: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    severity: Severity = Severity.SEV4

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            CronSim(value, datetime(2026, 1, 1, tzinfo=UTC))
        except CronSimError as error:
            raise ValueError(
                f'invalid cron schedule {value!r}: {error} (five fields, e.g. "0 4 * * mon")'
            ) from None
        return value

    def next_tick(self, after: datetime, zone: str) -> datetime:
        """The first time of the schedule strictly after `after` (UTC)."""
        local = after.astimezone(ZoneInfo(self.timezone or zone))
        return next(CronSim(self.cron, local)).astimezone(UTC)

    def fingerprint(self) -> str:
        """Changes when the schedule's times change (then the next tick is worked out again)."""
        data = {"cron": self.cron, "timezone": self.timezone}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
