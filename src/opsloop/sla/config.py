"""The SLA part of the policy (`sla:`, `escalation:`): calendars, targets per match, escalation chains."""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from opsloop.fields import Days, Duration, Name, Strict, TimeZone, _clock_time
from opsloop.types import Kind, Severity, Tier


class Calendar(Strict):
    days: Days
    hours: str = "09:00-17:00"
    timezone: TimeZone | None = None
    holidays: list[date] = []

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        start, sep, end = value.partition("-")
        if not sep:
            raise ValueError("write working hours as HH:MM-HH:MM")
        if _clock_time(start) >= _clock_time(end):
            raise ValueError("working hours must end after they start")
        return value

    @property
    def opens(self) -> time:
        return _clock_time(self.hours.partition("-")[0])

    @property
    def closes(self) -> time:
        return _clock_time(self.hours.partition("-")[2])


class SlaMatch(Strict):
    kind: Kind | None = None
    severity: Severity | None = None
    tier: Tier | None = None
    labels: dict[str, str] = {}


class SlaTargets(Strict):
    response: Duration | None = None
    update: Duration | None = None
    resolution: Duration | None = None


class SlaPolicy(Strict):
    match: SlaMatch = SlaMatch()
    calendar: str = "24x7"
    targets: SlaTargets
    warn_at: list[Annotated[float, Field(gt=0, lt=1)]] = [0.75]
    escalation: str | None = None
    # when the chain starts paging: as the item triggers (PagerDuty's way), or once the
    # response target is breached; either way an acknowledgement stops it
    escalate_on: Literal["trigger", "breach"] = "trigger"

    @model_validator(mode="after")
    def _breach_needs_a_response_target(self) -> SlaPolicy:
        if self.escalate_on == "breach" and self.escalation and self.targets.response is None:
            raise ValueError("escalate_on: breach needs a response target to breach")
        return self


class Sla(Strict):
    calendars: dict[Name, Calendar] = {}
    policies: list[SlaPolicy] = []
    # a person who declares (opens, requests) an item is responding: its response target is met then
    declared_meets_response: bool = True
    # an integration's acknowledgement (Events v2 `acknowledge`) meets the response target only if so
    machine_ack_meets_response: bool = False


class EscalationLevel(Strict):
    notify: list[str] = Field(min_length=1)
    wait: Duration


class EscalationChain(Strict):
    repeat: Annotated[int, Field(ge=0, le=20)] = 0
    levels: list[EscalationLevel] = Field(min_length=1)
