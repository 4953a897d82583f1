"""The runbook file (`runbooks/<id>.yaml`, SPEC: Runbook file), validated strictly.

Steps run in file order by default: a step without `requires` waits for the
step before it; `requires: [a, b]` names its prerequisites instead (earlier
steps only), and `requires: []` lets it start at once. A step whose `when`
condition is false is skipped with that reason.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from opsloop.errors import InvalidInput
from opsloop.fields import Duration, Strict
from opsloop.rollouts.config import Fleet
from opsloop.runbooks.render import check_syntax
from opsloop.runbooks.versions import Version

MAX_INPUT = 500  # characters of one typed input value


def _template(value: str) -> str:
    check_syntax(value)
    return value


def _expression(value: str) -> str:
    check_syntax(value, expression=True)
    return value


def _version(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError('write the version as quoted text, e.g. "1.2.0"')
    Version.parse(value)
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Template = Annotated[str, AfterValidator(_template)]
Expression = Annotated[str, AfterValidator(_expression)]
RunbookId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=64)]
# step ids and input names are used as `steps.<id>` / `inputs.<name>` in templates
StepId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
InputName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
UserOrGroup = Annotated[str, Field(pattern=r"^[UWS][A-Z0-9]+$")]
Approver = Annotated[str, Field(pattern=r"^(role:[a-z][a-z0-9_-]*|[UWS][A-Z0-9]+)$")]
JsonPath = Annotated[str, Field(pattern=r"^\$(\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\])*$")]
HttpStatus = Annotated[int, Field(ge=100, le=599)]
InputValue = str | int | bool


class Input(Strict):
    type: Literal["string", "integer", "boolean"] = "string"
    pattern: str | None = None  # the whole value must match
    required: bool = False
    default: InputValue | None = None
    example: InputValue | None = None  # what `opsloop runbooks check` trial-renders with
    description: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"invalid regular expression: {error}") from None
        return pattern

    @model_validator(mode="after")
    def _consistent(self) -> Input:
        if self.pattern is not None and self.type != "string":
            raise ValueError("pattern: only string inputs take a pattern")
        if self.required and self.default is not None:
            raise ValueError("default: a required input has no default (drop one of them)")
        for key in ("default", "example"):
            value = getattr(self, key)
            if value is not None:
                try:
                    self.accept(str(value).lower() if isinstance(value, bool) else str(value))
                except InvalidInput as error:
                    raise ValueError(f"{key}: {error}") from None
        return self

    def accept(self, raw: str) -> InputValue:
        """A typed value from what a person typed, or InvalidInput saying what is expected."""
        if len(raw) > MAX_INPUT:
            raise InvalidInput(f"is {len(raw)} characters long; at most {MAX_INPUT}")
        if self.type == "integer":
            if not re.fullmatch(r"-?\d{1,18}", raw.strip()):
                raise InvalidInput(f"{raw!r} is not a whole number")
            return int(raw)
        if self.type == "boolean":
            word = raw.strip().lower()
            if word in ("true", "yes", "on", "1"):
                return True
            if word in ("false", "no", "off", "0"):
                return False
            raise InvalidInput(f"{raw!r} is not true or false")
        if self.pattern is not None and re.fullmatch(self.pattern, raw) is None:
            raise InvalidInput(f"{raw!r} does not match the pattern {self.pattern}")
        return raw


class StepBase(Strict):
    id: StepId
    title: Template | None = None
    details: Template | None = None  # longer instructions, shown under the title
    requires: list[StepId] | None = None  # None: the step before this one
    when: Expression | None = None


class ManualStep(StepBase):
    type: Literal["manual"]
    title: Template


class ApprovalStep(StepBase):
    type: Literal["approval"]
    approvers: Annotated[list[Approver], BeforeValidator(_one_or_many), Field(min_length=1)]
    min_approvals: Annotated[int, Field(ge=1, le=10)] = 1
    expires_after: Duration | None = None

    @model_validator(mode="after")
    def _reachable(self) -> ApprovalStep:
        if all(not a.startswith(("role:", "S")) for a in self.approvers) and (
            self.min_approvals > len(set(self.approvers))
        ):
            raise ValueError(f"min_approvals: {self.min_approvals} distinct approvers are needed but "
                             f"only {len(set(self.approvers))} are listed")
        return self


class NotifyStep(StepBase):
    type: Literal["notify"]
    channel: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]  # a channel name of the policy
    message: Template


class HttpRequest(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: Template
    headers: dict[str, Template] = {}
    json_body: Any = Field(default=None, alias="json")

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        if not url.startswith(("https://", "http://")):
            raise ValueError("the url must start with https:// (or http://), written out, not templated")
        return url

    @field_validator("json_body")
    @classmethod
    def _templates(cls, body: Any) -> Any:
        for text in _strings(body):
            check_syntax(text)
        return body


class Expect(Strict):
    status: Annotated[list[HttpStatus], Field(min_length=1)] = [200, 201, 202, 204]


class Retry(Strict):
    attempts: Annotated[int, Field(ge=1, le=10)] = 1
    on_status: list[HttpStatus] = []


def _bounded_timeout(value: timedelta) -> timedelta:
    if value > timedelta(minutes=5):
        raise ValueError("at most 5m")
    return value


FLEET_KEYS = ("select", "waves", "order_by", "pause_between", "max_concurrency", "max_errors", "deadline",
              "tenant_windows")


class HttpStep(StepBase):
    type: Literal["http"]
    request: HttpRequest
    expect: Expect = Expect()
    timeout: Annotated[Duration, AfterValidator(_bounded_timeout)] = timedelta(seconds=10)
    retry: Retry = Retry()
    outputs: dict[StepId, JsonPath] = {}  # name -> where in the JSON response
    # `foreach: tenants`: one call per tenant the selector picks, in waves (opsloop.rollouts); the keys
    # of FLEET_KEYS are written on the step and gathered here
    foreach: Literal["tenants"] | None = None
    fleet: Fleet | None = None
    rollback: HttpRequest | None = None  # per tenant already done, when people press Roll back

    @model_validator(mode="before")
    @classmethod
    def _gather_fleet(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "fleet" in data:
            raise ValueError("fleet: write the rollout keys (select, waves ...) on the step itself")
        given = {k: data[k] for k in FLEET_KEYS if k in data}
        if not given and "rollback" not in data and data.get("foreach") != "tenants":
            return data
        if data.get("foreach") != "tenants":
            keys = ", ".join([*given, *(["rollback"] if "rollback" in data else [])])
            raise ValueError(f"{keys}: only a step with `foreach: tenants` takes these keys")
        return {**{k: v for k, v in data.items() if k not in FLEET_KEYS}, "fleet": given}

    @model_validator(mode="after")
    def _fleet(self) -> HttpStep:
        if self.foreach == "tenants" and self.outputs:
            raise ValueError("outputs: a foreach step has one answer per tenant; it has no outputs")
        return self


Step = Annotated[ManualStep | ApprovalStep | NotifyStep | HttpStep, Field(discriminator="type")]
STEP_TYPES = ("manual", "approval", "notify", "http")


class Runbook(Strict):
    schema_version: Literal[1]
    id: RunbookId
    version: Annotated[str, BeforeValidator(_version)]
    status: Literal["active", "deprecated", "retired"] = "active"
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: str | None = None
    owners: Annotated[list[UserOrGroup], Field(min_length=1)]
    inputs: dict[InputName, Input] = {}
    steps: Annotated[list[Step], Field(min_length=1, max_length=40)]

    @model_validator(mode="after")
    def _graph(self) -> Runbook:
        problems: list[str] = []
        seen: dict[str, int] = {}
        ids = [s.id for s in self.steps]
        for i, step in enumerate(self.steps):
            where = f"steps[{i}] ({step.id})"
            if step.id in seen:
                problems.append(f"{where}.id: the id is already used by steps[{seen[step.id]}]")
            for name in step.requires or []:
                if name == step.id:
                    problems.append(f"{where}.requires: a step cannot require itself")
                elif name in seen:
                    continue
                elif name in ids:
                    problems.append(f"{where}.requires: {name!r} is a later step; "
                                    "a step can only require steps before it")
                else:
                    problems.append(f"{where}.requires: unknown step {name!r}")
            seen.setdefault(step.id, i)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def version_key(self) -> Version:
        return Version.parse(self.version)

    def prerequisites(self, index: int) -> list[str]:
        """The steps a step waits for: its `requires`, or else the step before it."""
        step = self.steps[index]
        if step.requires is not None:
            return list(step.requires)
        return [self.steps[index - 1].id] if index > 0 else []

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def step_title(step: Step) -> str:
    """The template of a step's headline (every type has one, written or implied)."""
    if step.title is not None:
        return step.title
    if isinstance(step, ApprovalStep):
        return f"Approval: {step.id}"
    if isinstance(step, NotifyStep):
        return f"Notify #{step.channel}"
    if isinstance(step, HttpStep):
        return f"{step.request.method} {step.request.url}"
    return step.id
