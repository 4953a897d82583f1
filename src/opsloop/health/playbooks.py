"""Playbooks: what a CSM does about an at-risk account, as versioned files (`playbooks/<id>.yaml`).

Like runbooks, a playbook has an id, a semantic `version`, a status and owners; a play
pins the exact version and content hash it started with and copies the steps, so
editing a file never changes a running play. Each step has a `due` time: working time
on the plays' calendar (`health.plays.calendar`, the SLA's business calendar), counted
from when the play opens. As for SLA targets, `8h` is one 8-hour business day and `2d`
is 48 working hours.

    schema_version: 1
    id: executive-outreach
    version: 1.0.0
    status: active              # active | deprecated | retired
    title: Executive outreach
    owners: [U0CSM1]
    reasons: [renewal, incidents]   # the prompt's top reason picks the playbook
    summary: Call the sponsor with an executive from our side ...
    steps:
      - {id: brief, title: "Brief our executive on the incidents", due: 4h}
      - {id: call, title: "Call the sponsor together", due: 16h}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from opsloop.errors import ConfigError
from opsloop.fields import Duration, Strict
from opsloop.health.config import FACTORS, RULES
from opsloop.policy_loader import format_location
from opsloop.runbooks.versions import Version, content_hash
from opsloop.yaml_files import YamlDirectory, validated

MAX_FILE = 64 * 1024
ACTIVE, DEPRECATED, RETIRED = "active", "deprecated", "retired"


class PlaybookStep(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
    title: Annotated[str, Field(min_length=1, max_length=300)]
    due: Duration  # working time after the play opens (more than zero: the parser says so)


class Playbook(Strict):
    schema_version: Literal[1]
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=64)]
    version: Annotated[str, Field(max_length=64)]
    status: Literal["active", "deprecated", "retired"] = "active"
    title: Annotated[str, Field(min_length=1, max_length=120)]
    owners: list[Annotated[str, Field(pattern=r"^[UWS][A-Z0-9]+$")]] = Field(min_length=1)
    reasons: list[str] = []
    summary: Annotated[str, Field(min_length=1, max_length=1500)]
    steps: list[PlaybookStep] = Field(min_length=1, max_length=20)

    @field_validator("version", mode="before")
    @classmethod
    def _semver(cls, value: object) -> object:
        if not isinstance(value, str):  # YAML reads 1.0 as a number
            raise ValueError('write the version as quoted text, e.g. "1.2.0"')
        Version.parse(value)  # a ValueError saying what to write
        return value

    @field_validator("reasons")
    @classmethod
    def _known(cls, reasons: list[str]) -> list[str]:
        for reason in reasons:
            if reason not in FACTORS + RULES:
                raise ValueError(f"unknown reason {reason!r} (known: {', '.join(FACTORS + RULES)})")
        return reasons

    @model_validator(mode="after")
    def _unique_steps(self) -> Playbook:
        ids = [step.id for step in self.steps]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"steps: step id {twice[0]!r} is used twice")
        return self

    @property
    def version_key(self) -> Version:
        return Version.parse(self.version)


@dataclass(frozen=True)
class LoadedPlaybook:
    playbook: Playbook
    source: str
    data: bytes
    sha256: str


def parse(data: bytes, source: str, *, expected_id: str | None = None) -> LoadedPlaybook:
    """Validate one playbook's bytes (memoised by content, like runbooks); errors name `source`."""
    playbook = validated(Playbook, data, source, expected_id, at_most=MAX_FILE, kind="playbook",
                         problems=_problems)
    return LoadedPlaybook(playbook, source, data, content_hash(data))


def _problems(error: ValidationError, raw: dict[str, Any]) -> list[str]:
    """Pydantic's errors as `steps[0].due: reason` lines."""
    lines = []
    for problem in error.errors():
        message = problem["msg"].removeprefix("Value error, ")
        message = {"extra_forbidden": "unknown key", "missing": "required"}.get(problem["type"], message)
        lines.append(f"{format_location(problem['loc'])}: {message}")
    return lines


class Playbooks(YamlDirectory[LoadedPlaybook]):
    """The playbooks directory, read on every call (a new play starts from the file as it is now)."""

    def parse_file(self, data: bytes, source: str, expected_id: str) -> LoadedPlaybook:
        return parse(data, source, expected_id=expected_id)

    def unknown(self, file_id: str) -> str:
        return f"no playbook {file_id!r} (known: {', '.join(self.ids()) or 'none'})"

    def problems(self) -> list[str]:
        """What stops opsloop at start: a playbook file that does not load."""
        return [line for _, found in self.load_all() if isinstance(found, ConfigError)
                for line in str(found).splitlines()]

    def usable(self) -> list[LoadedPlaybook]:
        return [found for _, found in self.load_all()
                if isinstance(found, LoadedPlaybook) and found.playbook.status != RETIRED]

    def suggest(self, reasons: list[str]) -> str | None:
        """The playbook answering the first reason any usable playbook answers (else the first one)."""
        usable = self.usable()
        for reason in reasons:
            for loaded in usable:
                if reason in loaded.playbook.reasons:
                    return loaded.playbook.id
        return usable[0].playbook.id if usable else None
