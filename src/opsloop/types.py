"""Shared names of the domain."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeAlias

JSON: TypeAlias = dict[str, Any]
UserId: TypeAlias = str  # a Slack user id (U...), or a console user's name

# Actors that are no person: integrations (`system:prometheus`), the command line (`system:cli`)
# and opsloop itself. They are authorised by how they got in (a token, a shell), never by roles.
SYSTEM_PREFIX = "system:"
OPSLOOP = "system:opsloop"  # what opsloop does by itself: timers, the runbook engine, the catalog


def is_system(actor: str) -> bool:
    return actor.startswith(SYSTEM_PREFIX)


class Kind(StrEnum):
    INCIDENT = "incident"
    ESCALATION = "escalation"
    EXCEPTION = "exception"
    MAINTENANCE = "maintenance"
    TASK = "task"  # a scheduled runbook's run (opsloop.schedules)

    @property
    def prefix(self) -> str:
        return _PREFIX[self]

    @classmethod
    def from_prefix(cls, prefix: str) -> Kind:
        for kind, p in _PREFIX.items():
            if p == prefix.upper():
                return kind
        raise KeyError(prefix)


_PREFIX = {Kind.INCIDENT: "INC", Kind.ESCALATION: "ESC", Kind.EXCEPTION: "EXC", Kind.MAINTENANCE: "MNT",
           Kind.TASK: "TSK"}


class Severity(StrEnum):
    SEV1 = "sev1"
    SEV2 = "sev2"
    SEV3 = "sev3"
    SEV4 = "sev4"


class State(StrEnum):
    # incidents and escalations
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    CLOSED = "closed"
    # exceptions
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    # maintenance windows (requested and rejected as exceptions are, when approval is required)
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    ENDED = "ended"


class Tier(StrEnum):
    ENTERPRISE = "enterprise"
    MID_MARKET = "mid-market"
    SMB = "smb"
