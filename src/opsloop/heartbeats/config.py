"""The `heartbeats` section of the policy file (owned here; `opsloop.policy` imports it).

    heartbeats:
      nightly-backup: {cron: "0 3 * * *", timezone: Europe/Berlin, grace: 30m, labels: {service: backup}}
      queue-worker: {every: 5m, grace: 1m}
      alerting-pipeline: {every: 1m, grace: 2m, alertname: Watchdog}

A heartbeat expects a check-in every `every`, or at each time of its `cron`
schedule (five fields, in `timezone`), and is missed `grace` after that.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError
from pydantic import Field, field_validator, model_validator

from opsloop.fields import Duration, Strict, TimeZone


class Heartbeat(Strict):
    every: Duration | None = None
    cron: str | None = None
    timezone: TimeZone | None = None  # the cron schedule's (default: the policy's)
    grace: Duration = timedelta(minutes=5)
    labels: dict[Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")], str] = {}
    # an Alertmanager alert of this name (e.g. Watchdog, always firing) checks it in
    alertname: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CronSim(value, datetime(2026, 1, 1, tzinfo=UTC))
            except CronSimError as error:
                raise ValueError(f"invalid cron schedule {value!r}: {error} "
                                 "(five fields, e.g. \"0 3 * * *\")") from None
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> Heartbeat:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give one of `every` (e.g. every: 5m) and `cron` (e.g. cron: \"0 3 * * *\")")
        if self.timezone is not None and self.cron is None:
            raise ValueError("`timezone` goes with `cron`")
        return self

    def deadline(self, after: datetime, zone: str) -> datetime:
        """When a heartbeat last heard from at `after` is missed: the next expected check-in, plus grace."""
        if self.every is not None:
            return after + self.every + self.grace
        assert self.cron is not None
        local = after.astimezone(ZoneInfo(self.timezone or zone))
        return next(CronSim(self.cron, local)).astimezone(UTC) + self.grace

    def fingerprint(self) -> str:
        """Changes when the schedule changes (then the deadline is computed again at start)."""
        data: dict[str, Any] = {"every": self.every.total_seconds() if self.every else None,
                                "cron": self.cron, "timezone": self.timezone,
                                "grace": self.grace.total_seconds()}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
