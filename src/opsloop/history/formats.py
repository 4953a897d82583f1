"""Reading past work items from opsloop's CSV, PagerDuty's incident export and Grafana OnCall's alert groups.

Every reader turns its file into `PastItem`s, validated before anything is
stored; each problem names the row (CSV line, or the JSON path of the item)
and the field. The format is told by the file: `.csv` is opsloop's own, JSON
by its shape:

- opsloop CSV: `id,kind,title,severity,tenants,service,opened_at,acknowledged_at,resolved_at`,
  times ISO 8601 with a zone, tenants separated by spaces. Every row must be resolved.
- PagerDuty: `GET /incidents` (`{"incidents": [...]}`) or the Analytics raw incidents
  (`{"data": [...]}` with `seconds_to_resolve`). Severity from the priority (P1-P5), else the
  urgency (high: sev2, low: sev4); the service's name becomes the `service` label.
- Grafana OnCall: `GET /api/v1/alert_groups/` (`{"results": [...]}`, or the list of them).
  Alert groups carry no severity: a `severity` label decides when present, else sev3.

Vendor exports hold open incidents too: those are skipped and counted, never
imported half-done (an imported item is closed).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from opsloop.errors import ConfigError
from opsloop.policy_loader import format_location
from opsloop.types import Kind, Severity

TITLE = 300
MAX_BYTES = 64 * 1024 * 1024  # a history file larger than this is refused before it is read
CSV_COLUMNS = ("id", "kind", "title", "severity", "tenants", "service", "opened_at", "acknowledged_at",
               "resolved_at")
CSV, PAGERDUTY, ONCALL = "csv", "pagerduty", "oncall"
PRIORITIES = {"p1": Severity.SEV1, "p2": Severity.SEV2, "p3": Severity.SEV3, "p4": Severity.SEV4,
              "p5": Severity.SEV4}
URGENCIES = {"high": Severity.SEV2, "low": Severity.SEV4}
LABEL_SEVERITIES = {"critical": Severity.SEV1, "high": Severity.SEV2, "error": Severity.SEV2,
                    "warning": Severity.SEV3, "medium": Severity.SEV3, "low": Severity.SEV4,
                    "info": Severity.SEV4, **{s.value: s for s in Severity}}


class PastItem(BaseModel):
    """One finished work item as it is imported; validated field by field."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s\x00-\x1f]+$")]
    kind: Kind = Kind.INCIDENT
    title: Annotated[str, Field(min_length=1, max_length=TITLE)]
    severity: Severity
    tenants: tuple[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")], ...] = ()
    service: Annotated[str | None, Field(max_length=100)] = None
    opened_at: AwareDatetime
    acknowledged_at: AwareDatetime | None = None
    resolved_at: AwareDatetime

    @field_validator("kind")
    @classmethod
    def _finished_kinds(cls, kind: Kind) -> Kind:
        if kind not in (Kind.INCIDENT, Kind.ESCALATION):
            raise ValueError("only incidents and escalations can be imported")
        return kind

    @field_validator("title", mode="before")
    @classmethod
    def _one_line(cls, value: Any) -> Any:
        return " ".join(value.split()) if isinstance(value, str) else value

    @field_validator("tenants", mode="before")
    @classmethod
    def _spaced(cls, value: Any) -> Any:
        return tuple(value.split()) if isinstance(value, str) else value

    @field_validator("service", "acknowledged_at", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    def problems(self, now: datetime) -> list[tuple[str, str]]:
        """What the fields say together: the order of the times, and nothing in the future."""
        found = []
        if self.acknowledged_at is not None and self.acknowledged_at < self.opened_at:
            found.append(("acknowledged_at", "is before opened_at"))
        if self.resolved_at < self.opened_at:
            found.append(("resolved_at", "is before opened_at"))
        elif self.acknowledged_at is not None and self.resolved_at < self.acknowledged_at:
            found.append(("resolved_at", "is before acknowledged_at"))
        if self.resolved_at > now:
            found.append(("resolved_at", "is in the future"))
        return found


@dataclass
class Reading:
    source: str  # csv | pagerduty | oncall
    items: list[tuple[str, PastItem]] = field(default_factory=list)  # (where, item)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (vendor items not finished)
    problems: list[str] = field(default_factory=list)


def read_history(path: Path, *, now: datetime) -> Reading:
    """Every past item of the file, or ConfigError naming each bad row and field (all of them)."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"{path}: {size:,} bytes; at most {MAX_BYTES:,} (split the export)")
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    reading = _csv(path, text) if path.suffix.lower() == ".csv" else _json(path, text)
    seen: dict[str, str] = {}
    for where, item in reading.items:
        reading.problems += [f"{path}: {where}: {name}: {reason}" for name, reason in item.problems(now)]
        if item.id in seen:
            reading.problems.append(f"{path}: {where}: id: {item.id!r} appears twice "
                                    f"(first at {seen[item.id]})")
        seen.setdefault(item.id, where)
    if reading.problems:
        raise ConfigError("\n".join(reading.problems[:50]) + (
            f"\n... and {len(reading.problems) - 50} more problems" if len(reading.problems) > 50 else ""))
    return reading


def _validate(reading: Reading, path: Path, where: str, raw: dict[str, Any]) -> None:
    try:
        reading.items.append((where, PastItem.model_validate(raw)))
    except ValidationError as error:
        for p in error.errors():
            message = "unknown column" if p["type"] == "extra_forbidden" else p["msg"]
            message = message.replace("Value error, ", "")
            reading.problems.append(f"{path}: {where}: {format_location(p['loc'])}: {message}")


def _csv(path: Path, text: str) -> Reading:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = tuple(reader.fieldnames or ())
    if sorted(header) != sorted(CSV_COLUMNS):
        raise ConfigError(f"{path}: the header must be {','.join(CSV_COLUMNS)} (got {','.join(header)})")
    reading = Reading(CSV)
    for number, row in enumerate(reader, start=2):  # the header is line 1
        if None in row or any(value is None for value in row.values()):
            reading.problems.append(f"{path}: row {number}: expected {len(CSV_COLUMNS)} columns")
            continue
        if not row.get("resolved_at"):
            reading.problems.append(f"{path}: row {number}: resolved_at: required (only finished work "
                                    "is imported)")
            continue
        _validate(reading, path, f"row {number}", dict(row))
    return reading


def _json(path: Path, text: str) -> Reading:
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{path}: not JSON: {error}") from None
    for key, source, convert in (("incidents", PAGERDUTY, _pagerduty), ("data", PAGERDUTY, _pagerduty),
                                 ("results", ONCALL, _alert_group)):
        if isinstance(data, dict) and isinstance(data.get(key), list):
            return _items(path, source, ((f"{key}[{i}]", item) for i, item in enumerate(data[key])), convert)
    if isinstance(data, list) and all(isinstance(page, dict) and isinstance(page.get("results"), list)
                                      for page in data) and data:
        pages = ((f"[{p}].results[{i}]", item) for p, page in enumerate(data) for i, item in
                 enumerate(page["results"]))
        return _items(path, ONCALL, pages, _alert_group)
    raise ConfigError(f"{path}: not a history export opsloop knows: expected PagerDuty's "
                      '{"incidents": [...]} or {"data": [...]}, or Grafana OnCall\'s {"results": [...]}')


Convert = Callable[[dict[str, Any]], tuple[dict[str, Any] | None, str | None]]


def _items(path: Path, source: str, items: Iterable[tuple[str, Any]], convert: Convert) -> Reading:
    reading = Reading(source)
    for where, item in items:
        if not isinstance(item, dict):
            reading.problems.append(f"{path}: {where}: an item must be an object")
            continue
        raw, skip = convert(item)
        if skip is not None:
            reading.skipped[skip] = reading.skipped.get(skip, 0) + 1
        elif raw is not None:
            _validate(reading, path, where, raw)
    return reading


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _title(*values: Any) -> str | None:
    """The first text given, on one line and cut to a title's length (a vendor's long title is no error)."""
    for value in values:
        if _text(value):
            line = " ".join(str(value).split())
            return line if len(line) <= TITLE else line[:TITLE - 1] + "…"
    return None


def _summary(value: Any) -> str | None:
    return _text(value.get("summary") or value.get("name")) if isinstance(value, dict) else None


def _later(start: Any, seconds: Any) -> Any:
    """`start` + `seconds` as ISO text, or None when either is missing; a bad start is left to validation."""
    if seconds is None or not isinstance(start, str):
        return None
    try:
        return (datetime.fromisoformat(start) + timedelta(seconds=float(seconds))).isoformat()
    except (ValueError, TypeError, OverflowError):
        return start


def _pagerduty(item: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    if item.get("status") not in (None, "resolved"):
        return None, f"not resolved ({item.get('status')})"
    created = item.get("created_at")
    resolved = item.get("resolved_at") or _later(created, item.get("seconds_to_resolve")) or (
        item.get("last_status_change_at") if item.get("status") == "resolved" else None)
    if not resolved:
        return None, "no resolution time"
    acknowledged = _later(created, item.get("seconds_to_first_ack"))
    acks = item.get("acknowledgements")
    if acknowledged is None and isinstance(acks, list) and acks and isinstance(acks[0], dict):
        acknowledged = acks[0].get("at")
    priority = _summary(item.get("priority")) or _text(item.get("priority_name")) or ""
    severity = (PRIORITIES.get(priority.strip().lower())
                or URGENCIES.get(str(item.get("urgency")), Severity.SEV3))
    return {"id": item.get("id"), "kind": Kind.INCIDENT, "severity": severity,
            "title": _title(item.get("title"), item.get("description"), item.get("summary")),
            "service": _summary(item.get("service")) or _text(item.get("service_name")),
            "opened_at": created, "acknowledged_at": acknowledged, "resolved_at": resolved}, None


def _alert_group(item: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    if item.get("state") != "resolved" or not item.get("resolved_at"):
        return None, f"not resolved ({item.get('state')})"
    labels: dict[str, str] = {}
    for label in item.get("labels") or []:  # [{"key": {"name": ...}, "value": {"name": ...}}]
        key, value = (label.get("key"), label.get("value")) if isinstance(label, dict) else (None, None)
        if isinstance(key, dict) and isinstance(value, dict):
            labels[str(key.get("name"))] = str(value.get("name"))
    severity = LABEL_SEVERITIES.get(labels.get("severity", "").lower(), Severity.SEV3)
    return {"id": item.get("id"), "kind": Kind.INCIDENT, "severity": severity,
            "title": _title(item.get("title")) or f"Alert group {item.get('id')}",
            "service": labels.get("service"), "opened_at": item.get("created_at"),
            "acknowledged_at": item.get("acknowledged_at"), "resolved_at": item.get("resolved_at")}, None
