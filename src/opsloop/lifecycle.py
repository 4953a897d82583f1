"""The lifecycle engine: which action moves a work item from which state to which.

    incident, escalation:  triggered → acknowledged → mitigated → resolved → closed
                           (mitigated, resolved or closed can be reopened to triggered)
    exception:             requested → approved | rejected;  approved → expired
    maintenance:           (requested → approved →) scheduled → active → ended
                           (requested → rejected; ended early from requested, scheduled or active)
    task:                  as an incident (opened by a schedule; resolved when its runbook completes)
"""

from __future__ import annotations

from dataclasses import dataclass

from opsloop.errors import IllegalTransition
from opsloop.models import WorkItem
from opsloop.types import Kind, State


@dataclass(frozen=True)
class Transition:
    action: str
    sources: frozenset[State]
    target: State
    stamp: str | None  # the WorkItem timestamp this transition sets
    verb: str  # for people: "INC-1 acknowledged by ..."


def _t(action: str, sources: set[State], target: State, stamp: str | None, verb: str) -> Transition:
    return Transition(action, frozenset(sources), target, stamp, verb)


_RESPONSE = {
    t.action: t
    for t in (
        _t("acknowledge", {State.TRIGGERED}, State.ACKNOWLEDGED, "acknowledged_at", "acknowledged"),
        _t("mitigate", {State.TRIGGERED, State.ACKNOWLEDGED}, State.MITIGATED, "mitigated_at", "mitigated"),
        _t("resolve", {State.TRIGGERED, State.ACKNOWLEDGED, State.MITIGATED}, State.RESOLVED,
           "resolved_at", "resolved"),
        _t("close", {State.RESOLVED}, State.CLOSED, "closed_at", "closed"),
        _t("reopen", {State.MITIGATED, State.RESOLVED, State.CLOSED}, State.TRIGGERED, None, "reopened"),
    )
}

_EXCEPTION = {
    t.action: t
    for t in (
        _t("approve", {State.REQUESTED}, State.APPROVED, "decided_at", "approved"),
        _t("reject", {State.REQUESTED}, State.REJECTED, "decided_at", "rejected"),
        _t("expire", {State.REQUESTED, State.APPROVED}, State.EXPIRED, "expired_at", "expired"),
    )
}

_MAINTENANCE = {
    t.action: t
    for t in (
        _t("approve", {State.REQUESTED}, State.SCHEDULED, "decided_at", "approved"),
        _t("reject", {State.REQUESTED}, State.REJECTED, "decided_at", "rejected"),
        _t("start", {State.SCHEDULED}, State.ACTIVE, None, "started"),
        _t("end", {State.REQUESTED, State.SCHEDULED, State.ACTIVE}, State.ENDED, "closed_at", "ended"),
    )
}

TRANSITIONS: dict[Kind, dict[str, Transition]] = {
    Kind.INCIDENT: _RESPONSE,
    Kind.ESCALATION: _RESPONSE,
    Kind.EXCEPTION: _EXCEPTION,
    Kind.MAINTENANCE: _MAINTENANCE,
    Kind.TASK: _RESPONSE,
}

INITIAL: dict[Kind, State] = {
    Kind.INCIDENT: State.TRIGGERED,
    Kind.ESCALATION: State.TRIGGERED,
    Kind.EXCEPTION: State.REQUESTED,
    Kind.MAINTENANCE: State.SCHEDULED,  # REQUESTED when the policy requires approval
    Kind.TASK: State.TRIGGERED,
}

FINAL: frozenset[State] = frozenset({State.CLOSED, State.REJECTED, State.EXPIRED, State.ENDED})
OPEN_STATES: dict[Kind, frozenset[State]] = {
    Kind.INCIDENT: frozenset({State.TRIGGERED, State.ACKNOWLEDGED, State.MITIGATED}),
    Kind.ESCALATION: frozenset({State.TRIGGERED, State.ACKNOWLEDGED, State.MITIGATED}),
    Kind.EXCEPTION: frozenset({State.REQUESTED, State.APPROVED}),
    Kind.MAINTENANCE: frozenset({State.REQUESTED, State.SCHEDULED, State.ACTIVE}),
    Kind.TASK: frozenset({State.TRIGGERED, State.ACKNOWLEDGED, State.MITIGATED}),
}


def transition(kind: Kind, state: State, action: str, ref: str) -> Transition:
    """The transition `action` from `state`, or IllegalTransition saying what is possible."""
    table = TRANSITIONS[kind]
    step = table.get(action)
    if step is None:
        known = ", ".join(table)
        raise IllegalTransition(f"{ref}: {kind.value}s cannot be {action}d (they can: {known})")
    if state not in step.sources:
        possible = next_actions(kind, state)
        hint = f"; from {state.value} it can: {', '.join(possible)}" if possible else ""
        raise IllegalTransition(f"{ref} is {state.value}; it cannot be {step.verb}{hint}")
    return step


def next_actions(kind: Kind, state: State) -> list[str]:
    return [t.action for t in TRANSITIONS[kind].values() if state in t.sources]


def refusal(item: WorkItem, actor: str, action: str) -> str | None:
    """Why `actor` may not take `action` on `item` whatever their roles (else None): the requester of
    an exception or a maintenance window never approves it."""
    if (item.kind in (Kind.EXCEPTION.value, Kind.MAINTENANCE.value) and action == "approve"
            and actor == item.created_by):
        verb = "requested" if item.kind == Kind.EXCEPTION.value else "scheduled"
        return f"you {verb} {item.ref}, so you cannot approve it; another approver must"
    return None
