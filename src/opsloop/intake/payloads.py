"""The two alert payload formats, validated with errors that name the field.

Alertmanager's webhook (version 4) and PagerDuty's Events API v2. Unknown
fields are ignored (senders add fields over time); missing or mistyped ones
are refused with their path, e.g. `alerts[3].labels: Input should be a valid
dictionary`. So is what could not be stored: a required text that is only
whitespace, a time that leaves the calendar once turned to UTC
(`0001-01-01T00:00:00+01:00`), a key longer than its column (255). A time
without a zone is read as UTC.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from opsloop.policy_loader import format_location
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


MAX_KEY = 255  # fingerprints, dedup keys, sources: the width of their columns


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


def _utc(value: datetime) -> datetime:
    """Aware and in UTC (naive is read as UTC); a time the calendar cannot hold in UTC is refused."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once in UTC (years 1 to 9999)") from None


Text = Annotated[str, AfterValidator(_not_blank)]
Moment = Annotated[datetime, AfterValidator(_utc)]


# --------------------------------------------------------------------------- Alertmanager


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AmAlert(_Lenient):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: Moment
    endsAt: Moment | None = None
    fingerprint: str = Field(default="", max_length=MAX_KEY)
    generatorURL: str = ""

    def key(self) -> str:
        """Alertmanager's fingerprint, or a stable hash of the labels when a sender omits it."""
        if self.fingerprint:
            return self.fingerprint
        canonical = json.dumps(self.labels, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class AlertmanagerWebhook(_Lenient):
    version: str = "4"
    groupKey: Text = Field(min_length=1)
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
MAX_LINKS = 20


def _timestamp(value: Any) -> Any:
    """ISO 8601, also in the `...+00:00Z` form some clients write (an offset, then a stray Z)."""
    if isinstance(value, str) and len(value) > 6 and value.endswith("Z") and value[-7] in "+-":
        return value[:-1]
    return value


Timestamp = Annotated[Moment | None, BeforeValidator(_timestamp)]


def web_url(value: str) -> bool:
    """An http(s) address one may link to (nothing that Slack markup could break out of)."""
    return value.startswith(("https://", "http://")) and len(value) <= 2000 and not any(
        c in value for c in " <>|\n\r\t\"")


class V2Link(_Lenient):
    href: str
    text: str = Field(default="", max_length=1024)


class V2Image(_Lenient):
    src: str
    href: str = ""
    alt: str = Field(default="", max_length=1024)


def _safe_links(items: list[Any]) -> list[Any]:
    """Only links to http(s) addresses are kept (a `javascript:` href is dropped, not refused)."""
    kept = [i for i in items if web_url(getattr(i, "href", "") if isinstance(i, V2Link)
                                        else getattr(i, "src", ""))]
    return kept[:MAX_LINKS]


class V2Payload(_Lenient):
    summary: Text = Field(min_length=1, max_length=1024)
    source: Text = Field(min_length=1, max_length=MAX_KEY)
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: Timestamp = None
    component: str | None = None
    group: str | None = None
    # PagerDuty spells it `class`
    class_: str | None = Field(default=None, alias="class")
    custom_details: dict[str, Any] | str | None = None

    def fields(self) -> dict[str, Any]:
        """The payload as PagerDuty spells it: what `label_map` paths point into."""
        return {"summary": self.summary, "source": self.source, "severity": self.severity,
                "component": self.component, "group": self.group, "class": self.class_,
                "custom_details": self.custom_details if isinstance(self.custom_details, dict) else {}}


class V2Event(_Lenient):
    routing_key: Text = Field(min_length=1)
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None = Field(default=None, max_length=MAX_KEY)
    payload: V2Payload | None = None
    client: str | None = Field(default=None, max_length=255)
    client_url: str | None = None
    links: Annotated[list[V2Link], AfterValidator(_safe_links)] = []
    images: Annotated[list[V2Image], AfterValidator(_safe_links)] = []

    @field_validator("dedup_key")
    @classmethod
    def _blank(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None

    @field_validator("client_url")
    @classmethod
    def _web(cls, value: str | None) -> str | None:
        return value if value and web_url(value) else None

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


class ChangePayload(_Lenient):
    summary: Text = Field(min_length=1, max_length=1024)
    source: str | None = Field(default=None, max_length=MAX_KEY)
    timestamp: Timestamp = None
    custom_details: dict[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        return {"summary": self.summary, "source": self.source, "custom_details": self.custom_details or {}}


class ChangeEvent(_Lenient):
    """A change event (`POST .../v2/change/enqueue`): a deploy, a config change, a migration."""

    routing_key: Text = Field(min_length=1)
    payload: ChangePayload
    links: Annotated[list[V2Link], AfterValidator(_safe_links)] = []
    images: Annotated[list[V2Image], AfterValidator(_safe_links)] = []
