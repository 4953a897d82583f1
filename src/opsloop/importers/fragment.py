"""What an import from another tool produces: a policy fragment and a report, checked by the policy loader.

The fragment holds `oncall`, `escalation`, `integrations` and `routing` (hints)
and nothing else; the report lists everything that could not be mapped, and
why, so that a person reviews both before copying the fragment into the
policy file (`opsloop.present.imports` writes both). Nothing is applied by the
import itself.

`merged` lays a fragment over a policy the way a person would paste it: teams
and chains are added (a name the policy already has is a collision, reported),
integrations appended, and routes put before the policy's own (the first match
wins, and a catch-all at the end of the policy would otherwise shadow them).
`check` validates the result with the same loader that reads `opsloop.yml`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from opsloop.policy import Policy
from opsloop.policy_loader import load_yaml, validation_problems

SECTIONS = ("oncall", "escalation", "integrations", "routing")
LookupEmail = Callable[[str], str | None]


def slug(text: str, taken: set[str] | None = None) -> str:
    """A policy name (`^[a-z][a-z0-9_-]*$`) for a vendor's name, unique among `taken`."""
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-") or "unnamed"
    base = base if base[0].isalpha() else f"x-{base}"
    name, n = base, 2
    while taken is not None and name in taken:
        name, n = f"{base}-{n}", n + 1
    if taken is not None:
        taken.add(name)
    return name


def duration(seconds: float) -> str:
    """Seconds as the policy writes durations: 1w, 2d, 12h, 5m, 30s."""
    whole = int(seconds)
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


@dataclass
class People:
    """Another tool's people, mapped to Slack user ids by email (users.csv first, then the directory)."""

    users: Mapping[str, str]  # lower-case email or name -> Slack id (users.csv)
    lookup: LookupEmail | None = None
    unmapped: dict[str, str] = field(default_factory=dict)  # vendor id -> who (for the report)
    mapped: dict[str, str] = field(default_factory=dict)  # vendor id -> Slack id

    def add(self, vendor_id: str, *, email: str | None, name: str | None,
            slack_id: str | None = None) -> None:
        found = slack_id
        for key in (email, name):
            if found is None and key:
                found = self.users.get(key.lower())
        if found is None and email and self.lookup is not None:
            found = self.lookup(email)
        if found:
            self.mapped[vendor_id] = found
        else:
            self.unmapped[vendor_id] = f"{name or '?'} <{email or 'no email'}>"

    def of(self, vendor_id: str) -> str | None:
        return self.mapped.get(vendor_id)


@dataclass
class Fragment:
    vendor: str
    oncall: dict[str, dict[str, Any]] = field(default_factory=dict)
    escalation: dict[str, dict[str, Any]] = field(default_factory=dict)
    integrations: list[dict[str, Any]] = field(default_factory=list)
    routing: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, list[str]] = field(default_factory=dict)  # section -> lines to review

    def note(self, section: str, line: str) -> None:
        self.report.setdefault(section, []).append(line)

    def policy(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SECTIONS if getattr(self, name)}


def merged(policy: dict[str, Any], fragment: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The policy with the fragment pasted in, and the names both define (the fragment's are kept)."""
    out = dict(policy)
    collisions = []
    for section in ("oncall", "escalation"):
        mine = dict(policy.get(section) or {})
        collisions += [f"{section}.{n}" for n in fragment.get(section, {}) if n in mine]
        out[section] = {**mine, **fragment.get(section, {})}
    names = {i.get("name") for i in fragment.get("integrations", [])}
    kept = [i for i in policy.get("integrations") or [] if i.get("name") not in names]
    collisions += [f"integrations: {i.get('name')}" for i in policy.get("integrations") or []
                   if i not in kept]
    out["integrations"] = kept + list(fragment.get("integrations", []))
    out["routing"] = list(fragment.get("routing", [])) + list(policy.get("routing") or [])
    return {k: v for k, v in out.items() if v not in ({}, [])}, collisions


def check(policy_path: Path, fragment: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, collisions) of the fragment pasted into the policy file, by the policy loader."""
    raw = load_yaml(policy_path) or {}
    combined, collisions = merged(raw if isinstance(raw, dict) else {}, fragment)
    try:
        Policy.model_validate(combined)
    except ValidationError as error:
        return validation_problems(error), collisions
    return [], collisions
