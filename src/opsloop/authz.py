"""Who may do what: the `roles` and `permissions` of the policy file, and refusing the rest.

`require` is the one way a service checks a person: allowed, or refused with
a `PermissionDenied` that says which role it needs, and a `permission.denied`
audit event (written in a transaction of its own, so it stays when the
refused change is undone). System actors (`system:...`) are authorised by how
they got in (a token, a shell) and pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from opsloop import audit
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.errors import PermissionDenied
from opsloop.policy import Policy
from opsloop.types import is_system


@dataclass(frozen=True)
class Person:
    id: str  # the user id (U...)
    name: str  # the name people know them by (Slack's handle, or the id where there is none)


class Directory(Protocol):
    """Who exists: a user group's (Slack `S...` id) members, and people by id or by name, at the
    moment of asking. `where` names whom it knows, for refusals ("this Slack workspace")."""

    @property
    def where(self) -> str: ...

    def members(self, group_id: str) -> frozenset[str]: ...

    def person(self, user_id: str) -> Person | None:
        """The person with this id, or None when there is nobody (DirectoryUnavailable: cannot tell)."""
        ...

    def find(self, name: str) -> list[Person]:
        """Everyone whose handle, display name or real name is `name` (any case)."""
        ...


class StaticDirectory:
    """A directory that knows what it is given: groups, and people (id -> name)."""

    def __init__(self, groups: dict[str, frozenset[str]] | None = None,
                 people: Mapping[str, str] | Iterable[str] = (), *, where: str = "the directory") -> None:
        self.groups = groups or {}
        named = dict(people) if isinstance(people, Mapping) else {p: p for p in people}
        for members in self.groups.values():
            named.update({m: named.get(m, m) for m in members})
        self.people = named
        self.where = where

    def members(self, group_id: str) -> frozenset[str]:
        return self.groups.get(group_id, frozenset())

    def person(self, user_id: str) -> Person | None:
        name = self.people.get(user_id)
        return None if name is None else Person(user_id, name)

    def find(self, name: str) -> list[Person]:
        wanted = name.lower()
        return [Person(i, n) for i, n in self.people.items() if wanted in (n.lower(), i.lower())]


_PLURAL = {"incident": "incidents", "escalation": "escalations", "exception": "exceptions",
           "maintenance": "maintenance windows"}
_DOING = {
    "open": "open {}", "request": "request {}", "tenants": "change the accounts of {}",
    "pause": "pause or resume the clocks of {}", "update": "post updates on {}", "expire": "end {}",
    "severity": "change the severity of {}", "role": "give roles on {}",
    "runbook.run": "run runbooks", "runbook.step": "work runbook steps",
    "oncall.override": "override on-call shifts", "health.view": "see the health",
    "health.respond": "answer prompts and run plays",
    "followup.create": "make follow-ups", "followup.close": "close follow-ups others own",
    "review.draft": "draft reviews", "review.edit": "edit reviews", "review.publish": "publish reviews",
}


def describe(action: str) -> str:
    """An action as what a person does: `escalation.acknowledge` -> "acknowledge escalations"."""
    if action in _DOING:
        return _DOING[action]
    noun, _, verb = action.partition(".")
    if noun in _PLURAL:
        return _DOING.get(verb, verb + " {}").format(_PLURAL[noun])
    return action.replace(".", " ")


def policy_people(policy: Policy) -> list[str]:
    """Every user id the policy names (roles, rotations, escalation levels, channel invites): whom
    the console knows, having no Slack workspace to ask."""
    named = [m for members in policy.roles.values() for m in members]
    named += [m for team in policy.oncall.values() for m in team.rotation]
    named += [t for chain in policy.escalation.values() for level in chain.levels for t in level.notify]
    named += policy.incident_channels.invite if policy.incident_channels else []
    return sorted({m for m in named if re.fullmatch(r"[UW][A-Z0-9]+", m)})


class Authorizer:
    def __init__(self, policy: Policy, db: Database, clock: Clock,
                 directory: Directory | None = None) -> None:
        self.policy = policy
        self.directory: Directory = directory or StaticDirectory(
            people=policy_people(policy), where="the people the policy names (roles, on-call, escalation)")
        self.db = db
        self.clock = clock

    def has_role(self, user: str, role: str) -> bool:
        if role == "everyone":
            return True
        for member in self.policy.roles.get(role, []):
            if member == user:
                return True
            if member.startswith("S") and user in self.directory.members(member):
                return True
        return False

    def people(self, role: str) -> list[str]:
        """Everyone in `role` now: its user ids, and the members of its user groups."""
        out: list[str] = []
        for member in self.policy.roles.get(role, []):
            found = sorted(self.members(member)) if member.startswith("S") else [member]
            out += [person for person in found if person not in out]
        return out

    def members(self, group: str) -> frozenset[str]:
        return self.directory.members(group)

    def roles_of(self, user: str) -> list[str]:
        return [role for role in self.policy.roles if self.has_role(user, role)]

    def allowed(self, user: str, action: str) -> bool:
        if is_system(user):  # authenticated by their own token before they get here
            return True
        return any(self.has_role(user, role) for role in self.policy.roles_allowed(action))

    def explain(self, action: str) -> str:
        """The roles allowed `action`, as English: "responder, commander or admin"."""
        roles = self.policy.roles_allowed(action)
        return roles[0] if len(roles) == 1 else f"{', '.join(roles[:-1])} or {roles[-1]}"

    # ------------------------------------------------------------------ refusing

    def require(self, actor: str, action: str, *, subject: str, doing: str | None = None,
                owners: tuple[str | None, ...] = (), owner_is: str = "",
                attempted: str | None = None) -> None:
        """Return if `actor` may take `action` (or is one of `owners`); else audit and refuse.

        The refusal reads `you may not <doing>: that needs <owner_is or >the role <roles>`;
        the audit event names `attempted` (default: the action)."""
        if actor in owners or self.allowed(actor, action):
            return
        needs = f"{owner_is} or the role" if owner_is else "the role"
        raise self.refuse(actor, attempted or action, subject=subject, reason=f"you may not "
                          f"{doing or describe(action)}: that needs {needs} {self.explain(action)}")

    def refuse(self, actor: str, attempted: str, *, subject: str, reason: str,
               detail: Mapping[str, Any] | None = None) -> PermissionDenied:
        """Audit a refusal in a transaction of its own; returns the error to raise."""
        with self.db.transaction() as session:
            audit.record(session, at=self.clock.now(), actor=actor, action="permission.denied",
                         subject=subject, after={"attempted": attempted, **(detail or {})})
        return PermissionDenied(reason)
