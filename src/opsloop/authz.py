"""Who may do what: the `roles` and `permissions` of the policy file."""

from __future__ import annotations

from typing import Protocol

from opsloop.policy import Policy


class Directory(Protocol):
    """Resolves a user group (Slack `S...` id) to its members, at the moment of asking."""

    def members(self, group_id: str) -> frozenset[str]: ...


class StaticDirectory:
    def __init__(self, groups: dict[str, frozenset[str]] | None = None) -> None:
        self.groups = groups or {}

    def members(self, group_id: str) -> frozenset[str]:
        return self.groups.get(group_id, frozenset())


SYSTEM_PREFIX = "system:"  # integrations and opsloop itself; never a Slack user id


def is_system(actor: str) -> bool:
    return actor.startswith(SYSTEM_PREFIX)


class Authorizer:
    def __init__(self, policy: Policy, directory: Directory | None = None) -> None:
        self.policy = policy
        self.directory = directory or StaticDirectory()

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
