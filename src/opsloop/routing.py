"""The routing tree: which runbook, severity, channel, SLA policy, chain and audiences a signal gets.

Like Alertmanager's: routes are tried in order, the first match wins; a
matching route with `continue: true` lets later routes match too, each
filling what the earlier ones left unset and adding audiences.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opsloop.policy import Policy
from opsloop.types import Severity


@dataclass(frozen=True)
class RouteDecision:
    severity: Severity | None = None
    runbook: str | None = None
    channel: str | None = None
    sla: str | None = None
    escalation: str | None = None
    audiences: tuple[str, ...] = ()
    matched: tuple[int, ...] = field(default=())  # indexes of the routes that matched


def route(policy: Policy, labels: dict[str, str]) -> RouteDecision:
    found: dict[str, object] = {}
    audiences: list[str] = []
    matched: list[int] = []
    for index, node in enumerate(policy.routing):
        if not node.matches(labels):
            continue
        matched.append(index)
        for name in ("severity", "runbook", "channel", "sla", "escalation"):
            value = getattr(node, name)
            if value is not None and name not in found:
                found[name] = value
        audiences += [a for a in node.audiences if a not in audiences]
        if not node.continue_:
            break
    return RouteDecision(audiences=tuple(audiences), matched=tuple(matched), **found)  # type: ignore[arg-type]
