"""Who may do what: the `roles` and `permissions` of the policy file, and refusing the rest.

`require` is the one way a service checks a person: allowed, or refused with
a `PermissionDenied` that says which role it needs, and a `permission.denied`
audit event (written in a transaction of its own, so it stays when the
refused change is undone). System actors (`system:...`) are authorised by how
they got in (a token, a shell) and pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from opsloop import audit
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.errors import PermissionDenied
from opsloop.policy import Policy
from opsloop.types import is_system


class Directory(Protocol):
    """Resolves a user group (Slack `S...` id) to its members, at the moment of asking."""

    def members(self, group_id: str) -> frozenset[str]: ...


class StaticDirectory:
    def __init__(self, groups: dict[str, frozenset[str]] | None = None) -> None:
        self.groups = groups or {}

    def members(self, group_id: str) -> frozenset[str]:
        return self.groups.get(group_id, frozenset())


class Authorizer:
    def __init__(self, policy: Policy, db: Database, clock: Clock,
                 directory: Directory | None = None) -> None:
        self.policy = policy
        self.directory = directory or StaticDirectory()
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
        roles = self.policy.roles_allowed(action)
        return " or ".join(roles)

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
                          f"{doing or action.replace('.', ' ')}: that needs {needs} {self.explain(action)}")

    def refuse(self, actor: str, attempted: str, *, subject: str, reason: str,
               detail: Mapping[str, Any] | None = None) -> PermissionDenied:
        """Audit a refusal in a transaction of its own; returns the error to raise."""
        with self.db.transaction() as session:
            audit.record(session, at=self.clock.now(), actor=actor, action="permission.denied",
                         subject=subject, after={"attempted": attempted, **(detail or {})})
        return PermissionDenied(reason)
