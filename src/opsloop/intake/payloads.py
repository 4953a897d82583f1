"""The two alert payload formats, validated with errors that name the field.

Alertmanager's webhook (version 4) and PagerDuty's Events API v2. Unknown
fields are ignored (senders add fields over time); missing or mistyped ones
are refused with their path, e.g. `alerts[3].labels: Input should be a valid
dictionary`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from opsloop.policy import format_location
from opsloop.types import Severity


class PayloadError(ValueError):
    """An intake payload is invalid; `errors` name each field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _errors(error: ValidationError) -> list[str]:
    out = []
    for problem in error.errors():
        message = problem["msg"].removeprefix("Value error, ")
        out.append(f"{format_location(problem['loc'])}: {message}")
    return out


def parse(model: type[BaseModel], body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise PayloadError(_errors(error)) from None


# --------------------------------------------------------------------------- Alertmanager


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AmAlert(_Lenient):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: datetime
    endsAt: datetime | None = None
    fingerprint: str = ""
    generatorURL: str = ""

    def key(self) -> str:
        """Alertmanager's fingerprint, or a stable hash of the labels when a sender omits it."""
        if self.fingerprint:
            return self.fingerprint
        canonical = json.dumps(self.labels, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class AlertmanagerWebhook(_Lenient):
    version: str = "4"
    groupKey: str = Field(min_length=1)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""
    truncatedAlerts: int = 0
    alerts: list[AmAlert] = Field(min_length=1)

    @field_validator("version")
    @classmethod
    def _v4(cls, value: str) -> str:
        if value != "4":
            raise ValueError(f"webhook payload version {value!r} is not supported (4 is)")
        return value


# --------------------------------------------------------------------------- Events API v2

EVENTS_V2_SEVERITY = {"critical": Severity.SEV1, "error": Severity.SEV2,
                      "warning": Severity.SEV3, "info": Severity.SEV4}


class V2Payload(_Lenient):
    summary: str = Field(min_length=1, max_length=1024)
    source: str = Field(min_length=1, max_length=255)
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: datetime | None = None
    component: str | None = None
    group: str | None = None
    # PagerDuty spells it `class`
    class_: str | None = Field(default=None, alias="class")
    custom_details: dict[str, Any] | str | None = None


class V2Event(_Lenient):
    routing_key: str = Field(min_length=1)
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None = Field(default=None, max_length=255)
    payload: V2Payload | None = None
    client: str | None = None
    client_url: str | None = None

    @field_validator("dedup_key")
    @classmethod
    def _blank(cls, value: str | None) -> str | None:
        return value or None

    def problems(self) -> list[str]:
        """What the field types cannot say: what each action needs."""
        if self.event_action == "trigger" and self.payload is None:
            return ["payload: required for a trigger (summary, source and severity)"]
        if self.event_action != "trigger" and self.dedup_key is None:
            return [f"dedup_key: required for {self.event_action}"]
        return []


def parse_v2(body: Any) -> V2Event:
    """Validate an Events API v2 event, refusing missing per-action fields too."""
    event: V2Event = parse(V2Event, body)
    problems = event.problems()
    if problems:
        raise PayloadError(problems)
    return event
