"""The policy file (`opsloop.yml`): operations as code, validated strictly.

Every key is declared here; an unknown key, a bad value or a dangling
reference (a channel, role, escalation chain or on-call team that is not
defined) is refused at start with the file, the key path and the reason.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from opsloop.changes.config import ChangesPolicy
from opsloop.compliance.config import AuditPolicy, Retention
from opsloop.digest.config import Digest
from opsloop.fields import (
    WEEKDAYS,
    Duration,
    Name,
    Strict,
    TimeZone,
    _clock_time,
)
from opsloop.health.config import HealthPolicy
from opsloop.heartbeats.config import Heartbeat
from opsloop.incident_roles.config import Duty, RoleName
from opsloop.intake.config import LabelName, PayloadPath
from opsloop.loops.config import (
    Audience,
    AudienceName,
    Loops,
    ProductPriority,
)
from opsloop.maintenance.config import MaintenancePolicy
from opsloop.remediation.config import Actions
from opsloop.reviews.config import ReviewsPolicy
from opsloop.runbooks.config import RunbooksPolicy
from opsloop.schedules.config import Schedule
from opsloop.sla.config import (
    EscalationChain,
    Sla,
)
from opsloop.status.config import StatusPolicy
from opsloop.types import Severity

# --------------------------------------------------------------------------- sections


class Integration(Strict):
    name: Name
    kind: Literal["alertmanager", "events_v2", "signals", "heartbeat"]
    token_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
    # events_v2: which labels an event's fields become (label -> `custom_details.KEY`, `component` ...),
    # over the defaults (tenant, service from custom_details; component, group, class as they are)
    label_map: dict[LabelName, PayloadPath] = {}
    # alertmanager: its API, where maintenance windows are mirrored as silences
    silence_url: Annotated[str, Field(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")] | None = None

    @model_validator(mode="after")
    def _kind_fits(self) -> Integration:
        if self.label_map and self.kind != "events_v2":
            raise ValueError("label_map is for integrations of kind events_v2")
        if self.silence_url is not None and self.kind != "alertmanager":
            raise ValueError("silence_url is for integrations of kind alertmanager")
        return self


class Route(Strict):
    """One node of the routing tree; the first match wins unless `continue` is set."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    match: dict[str, str] = {}
    match_re: dict[str, str] = {}
    severity: Severity | None = None
    runbook: str | None = None
    channel: str | None = None
    sla: str | None = None
    escalation: str | None = None
    audiences: list[str] = []
    continue_: bool = Field(default=False, alias="continue")

    @field_validator("match_re")
    @classmethod
    def _compiles(cls, patterns: dict[str, str]) -> dict[str, str]:
        for label, pattern in patterns.items():
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"{label}: invalid regular expression: {error}") from None
        return patterns

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(key) != value for key, value in self.match.items()):
            return False
        # anchored, like Alertmanager's match_re
        return all(
            re.fullmatch(pattern, labels.get(key, "")) is not None
            for key, pattern in self.match_re.items()
        )


class Rotation(Strict):
    """Who is on call: members taking turns (`rotation`), or an iCalendar feed (`ical`, a file
    relative to the policy file, loaded at start and by `opsloop oncall refresh`)."""

    rotation: list[str] = []
    ical: Annotated[str, Field(min_length=1)] | None = None
    handoff: str = "mon 09:00"
    length: Duration = timedelta(weeks=1)
    timezone: TimeZone | None = None
    # the first member's shift starts at the first handoff on or after this date
    # (default 2024-01-01); change it to shift who is on call without reordering
    anchor: date | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Rotation:
        if self.ical is None and not self.rotation:
            raise ValueError("give the members (`rotation: [U...]`) or an iCalendar feed (`ical: FILE`)")
        if self.ical is not None:
            extra = sorted({"rotation", "handoff", "length", "anchor"} & self.model_fields_set)
            if extra:
                raise ValueError(f"an `ical` feed carries its own shifts: drop {', '.join(extra)}")
        return self

    @field_validator("handoff")
    @classmethod
    def _handoff(cls, value: str) -> str:
        day, _, at = value.strip().partition(" ")
        if day.lower() not in WEEKDAYS:
            raise ValueError("write the handoff as a day and a time, e.g. \"mon 09:00\"")
        _clock_time(at)
        return value


class ExceptionsPolicy(Strict):
    """How exception requests reach their approvers (the roles allowed `exception.approve`)."""

    ask: list[Literal["channel", "dm"]] = ["channel", "dm"]  # the ops channel's card, DMs
    default_expires: Duration | None = None  # an approval with no `expires:` lasts this long


class IncidentChannels(Strict):
    """A dedicated Slack channel per incident of these severities, with people invited."""

    severities: list[Severity] = Field(min_length=1)
    # Slack channel names: lower case letters, digits, `-` and `_`; the name is
    # prefix + number + title words, cut to Slack's 80 characters
    prefix: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,20}$")] = "inc-"
    invite: list[str] = []  # role:NAME, user ids (U...) or user-group ids (S...)


# Actions a role may be allowed to take. `everyone` is a pseudo-role. Each action gets a list of its own
# (`[*RESPONDERS]`): what `roles_allowed` returns must not be shared between actions.
RESPONDERS = ("responder", "commander", "admin")  # those who work items (incidents, tasks)
RESPONDERS_CSM = ("responder", "commander", "csm", "admin")  # escalations and runbooks: CSMs too
LEADS = ("commander", "admin")
PERMISSION_DEFAULTS: dict[str, list[str]] = {
    "incident.declare": [*RESPONDERS],
    "incident.acknowledge": [*RESPONDERS],
    "incident.mitigate": [*RESPONDERS],
    "incident.resolve": [*RESPONDERS],
    "incident.close": [*LEADS],
    "incident.reopen": [*RESPONDERS],
    "incident.assign": [*LEADS],
    "incident.tenants": [*RESPONDERS],
    "incident.severity": [*RESPONDERS],
    "incident.role": [*RESPONDERS],  # scribe, liaison ...; commander: incident.assign
    "escalation.open": ["everyone"],
    "escalation.acknowledge": [*RESPONDERS_CSM],
    "escalation.mitigate": [*RESPONDERS_CSM],
    "escalation.resolve": [*RESPONDERS_CSM],
    "escalation.close": ["csm", "commander", "admin"],
    "escalation.reopen": [*RESPONDERS_CSM],
    "escalation.assign": ["csm", "commander", "admin"],
    "escalation.tenants": [*RESPONDERS_CSM],
    "exception.request": ["everyone"],
    "exception.approve": ["approver", "admin"],
    "exception.reject": ["approver", "admin"],
    "exception.expire": ["approver", "admin"],
    "exception.assign": ["approver", "admin"],
    "task.acknowledge": [*RESPONDERS],  # scheduled tasks (TSK-n)
    "task.mitigate": [*RESPONDERS],
    "task.resolve": [*RESPONDERS],
    "task.close": [*RESPONDERS],
    "task.reopen": [*RESPONDERS],
    "task.assign": [*LEADS],
    "task.tenants": [*RESPONDERS],
    "runbook.run": [*RESPONDERS_CSM],
    "runbook.step": [*RESPONDERS_CSM],
    "runbook.remediate": [*RESPONDERS],  # confirm or retry an http call
    "incident.pause": [*RESPONDERS],
    "incident.update": [*RESPONDERS],
    "escalation.pause": [*RESPONDERS_CSM],
    "escalation.update": [*RESPONDERS_CSM],
    "oncall.override": [*LEADS],
    "health.view": ["csm", "leader", "admin"],  # an account's own CSM and sales owner always may
    "health.respond": ["csm", "admin"],  # answer a prompt, run a play; the account's own CSM always may
    "health.report": ["csm", "leader", "admin"],  # /health report: retention and whether the score works
    "digest.post": ["leader", "admin"],  # /digest: post the leadership digest now
    # /maintenance: a window scheduled by someone allowed is active from its start (unless the policy's
    # maintenance.require_approval asks another person allowed maintenance.approve first)
    "maintenance.schedule": [*LEADS],
    "maintenance.approve": [*LEADS],
    "maintenance.reject": [*LEADS],
    "maintenance.end": [*LEADS],  # whoever scheduled a window may always end it
    # send, edit or skip a notice in review, mark an item public; the item's comms owner always may
    "notice.approve": [*LEADS],
    "followup.create": [*RESPONDERS],  # the item's owner always may
    "followup.close": [*LEADS],  # the follow-up's owner always may
    "review.draft": [*RESPONDERS],  # the item's owner always may
    "review.edit": [*RESPONDERS],  # write, submit; the review's owner always may
    "review.publish": [*LEADS],  # publish, give it another owner; the review's owner always may
}


# --------------------------------------------------------------------------- the file


class Policy(Strict):
    timezone: TimeZone = "UTC"
    channels: dict[Name, str] = Field(default_factory=dict)
    roles: dict[Name, list[str]] = Field(default_factory=dict)
    permissions: dict[str, list[str]] = Field(default_factory=dict)
    integrations: list[Integration] = []
    routing: list[Route] = []
    sla: Sla = Sla()
    escalation: dict[Name, EscalationChain] = {}
    oncall: dict[Name, Rotation] = {}
    actions: Actions = Actions()
    accounts: str | None = None
    digest: Digest | None = None
    audiences: dict[AudienceName, Audience] = {}
    loops: Loops = Loops()
    product_priority: ProductPriority | None = None
    runbooks: RunbooksPolicy = RunbooksPolicy()
    incident_channels: IncidentChannels | None = None
    exceptions: ExceptionsPolicy = ExceptionsPolicy()
    health: HealthPolicy = HealthPolicy()
    audit: AuditPolicy = AuditPolicy()
    retention: Retention = Retention()
    changes: ChangesPolicy = ChangesPolicy()
    heartbeats: dict[Name, Heartbeat] = {}
    maintenance: MaintenancePolicy = MaintenancePolicy()
    incident_roles: dict[RoleName, Duty] = {}  # role -> its one-line duty (see opsloop.incident_roles)
    status: StatusPolicy = StatusPolicy()  # status pages: their address, each tier's contract
    reviews: ReviewsPolicy = ReviewsPolicy()
    # runbooks on a schedule: each tick opens a task (TSK-n) running the runbook (opsloop.schedules)
    schedules: dict[Name, Schedule] = {}

    # where the file was read from: relative paths in it are relative to its folder
    _source: Path = PrivateAttr(default=Path("opsloop.yml"))

    @model_validator(mode="after")
    def _references(self) -> Policy:
        problems: list[tuple[str, str]] = []
        if "ops" not in self.channels:
            problems.append(("channels", "an `ops` channel is required: incidents are posted there"))
        for action, roles in self.permissions.items():
            if action not in PERMISSION_DEFAULTS:
                known = ", ".join(sorted(PERMISSION_DEFAULTS))
                problems.append((f"permissions.{action}", f"unknown action (known: {known})"))
            for role in roles:
                if role != "everyone" and role not in self.roles:
                    problems.append((f"permissions.{action}", f"unknown role {role!r}"))
        names = [i.name for i in self.integrations]
        for name in {n for n in names if names.count(n) > 1}:
            problems.append(("integrations", f"integration name {name!r} is used twice"))
        alertnames = [hb.alertname for hb in self.heartbeats.values() if hb.alertname]
        for name in sorted({n for n in alertnames if alertnames.count(n) > 1}):
            problems.append(("heartbeats", f"alertname {name!r} is named by two heartbeats"))
        for i, route in enumerate(self.routing):
            where = f"routing[{i}]"
            if route.channel is not None and route.channel not in self.channels:
                problems.append((f"{where}.channel", f"unknown channel {route.channel!r}"))
            if route.escalation is not None and route.escalation not in self.escalation:
                problems.append((f"{where}.escalation", f"unknown escalation chain {route.escalation!r}"))
        for i, sla in enumerate(self.sla.policies):
            where = f"sla.policies[{i}]"
            if sla.calendar != "24x7" and sla.calendar not in self.sla.calendars:
                problems.append((f"{where}.calendar", f"unknown calendar {sla.calendar!r} "
                                 "(define it under sla.calendars, or use 24x7)"))
            if sla.escalation is not None and sla.escalation not in self.escalation:
                problems.append((f"{where}.escalation", f"unknown escalation chain {sla.escalation!r}"))
        plays = self.health.plays
        if ("calendar" in plays.model_fields_set and plays.calendar != "24x7"
                and plays.calendar not in self.sla.calendars):
            problems.append(("health.plays.calendar", f"unknown calendar {plays.calendar!r} "
                             "(define it under sla.calendars, or use 24x7)"))
        reviews = self.reviews
        if ("calendar" in reviews.model_fields_set and reviews.calendar != "24x7"
                and reviews.calendar not in self.sla.calendars):
            problems.append(("reviews.calendar", f"unknown calendar {reviews.calendar!r} "
                             "(define it under sla.calendars, or use 24x7)"))
        for name, chain in self.escalation.items():
            for j, level in enumerate(chain.levels):
                for target in level.notify:
                    reason = self._target_problem(target)
                    if reason:
                        problems.append((f"escalation.{name}.levels[{j}].notify", reason))
        if self.digest is not None and self.digest.channel not in self.channels:
            problems.append(("digest.channel", f"unknown channel {self.digest.channel!r}"))
        for name in ("support", "product"):
            if name in self.audiences and name not in self.channels:
                problems.append((f"audiences.{name}", f"needs a `{name}` channel under channels"))
        pp = self.product_priority
        if pp is not None and pp.channel not in self.channels:
            problems.append(("product_priority.channel", f"unknown channel {pp.channel!r}"))
        redesign = self.runbooks.redesign
        if redesign is not None and redesign.channel is not None and redesign.channel not in self.channels:
            problems.append(("runbooks.redesign.channel", f"unknown channel {redesign.channel!r}"))
        for j, target in enumerate(self.incident_channels.invite if self.incident_channels else []):
            reason = self._target_problem(target)
            if target.startswith("oncall:"):
                reason = "on-call teams cannot be invited yet: use role:NAME, a user id or a user-group id"
            if reason:
                problems.append((f"incident_channels.invite[{j}]", reason))
        if problems:
            raise ValueError("; ".join(f"{path}: {reason}" for path, reason in problems))
        return self

    def _target_problem(self, target: str) -> str | None:
        prefix, sep, name = target.partition(":")
        if sep and prefix == "oncall":
            return None if name in self.oncall else f"unknown on-call team {name!r}"
        if sep and prefix == "role":
            return None if name in self.roles else f"unknown role {name!r}"
        if re.fullmatch(r"[UWS][A-Z0-9]+", target):
            return None
        return f"{target!r} is not oncall:TEAM, role:NAME, a user id (U...) or a user-group id (S...)"

    # ------------------------------------------------------------------ lookups

    def roles_allowed(self, action: str) -> list[str]:
        return self.permissions.get(action, PERMISSION_DEFAULTS[action])

    def channel(self, name: str) -> str:
        """The Slack channel id for a channel name of the policy (`ops` -> `C0OPS`)."""
        return self.channels.get(name, name)

    @property
    def source(self) -> Path:
        """The policy file this was read from."""
        return self._source

    @property
    def accounts_path(self) -> Path | None:
        return None if self.accounts is None else self.path_of(self.accounts)

    def path_of(self, name: str) -> Path:
        """A file the policy names, relative to the policy file's folder."""
        return self._source.parent / name
