"""What happens, as typed facts: the vocabulary the handler table is written in.

A feature publishes an event inside the transaction that caused it
(`Bus.publish(session, event)`); the one table, in `opsloop/table.py`,
says which handlers hear it and in which order. Events are small and
immutable: the work item they are about (the row, as the transaction sees it)
and plain values. A handler that needs more loads it in the same session.

Adding an event: an `@event` class here (a frozen dataclass) that adds to `at` and `item` (every
event says when, and which work item) what a handler needs to decide and a
presenter needs to say; publish it where it happens; give it a row in the
table. An event nobody hears yet is fine: it is there for the next feature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, dataclass_transform

from opsloop.models import WorkItem
from opsloop.types import State

if TYPE_CHECKING:  # rows the events carry; the events module itself depends on no feature
    from opsloop.comms.models import NoticeDraft
    from opsloop.loops.review import Preview
    from opsloop.reviews.models import FollowUp, Review


E = TypeVar("E")


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(field,))
def event(cls: type[E]) -> type[E]:
    """Declares an event: a dataclass, frozen (what happened stays as it happened) and keyword-only."""
    return dataclass(frozen=True, kw_only=True)(cls)


@event
class Event:
    at: datetime
    item: WorkItem  # the work item it happened to (the row, as the publishing transaction sees it)


# --------------------------------------------------------------------------- work items


@event
class ItemCreated(Event):
    """A work item (any kind) exists; its card is not posted yet (a handler in the table posts it)."""

    actor: str
    tenants: tuple[str, ...]


@event
class ItemChanged(Event):
    """`action` happened to a work item: a lifecycle step (`acknowledge`, `resolve` ...), `assign`,
    `tenants`, `severity`, `role`, or a recorded change (`pause`, `resume`, `update` ...).

    `changed` holds each field that moved, as (before, after), `tenants` included (an incident role
    other than commander and comms as `role.NAME`). `forced`: a person overrode a check (closing with
    runbook steps open), `note` says why.
    `quiet` keeps it off the item's thread (it is still on the card and the timeline);
    `debounce` folds a burst of machine-made changes into one card edit per period."""

    action: str
    actor: str
    before: State
    after: State
    tenants: tuple[str, ...]
    note: str | None = None
    changed: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    quiet: bool = False
    debounce: timedelta = timedelta(0)
    forced: bool = False


@event
class AlertsUpdated(Event):
    """An incident's alerts changed (fired again, resolved) without changing its state."""

    debounce: timedelta = timedelta(0)


@event
class ChannelSettled(Event):
    """An incident's dedicated channel exists (`created`), or could not be made and the incident
    stays in `channel`, where it would have been (`reason` says why)."""

    channel: str
    created: bool
    reason: str | None = None


# --------------------------------------------------------------------------- runbooks


@event
class RunAttached(Event):
    """A runbook run was created on an item: by routing when the item was created, or by
    `/runbook run` (then `started_by` ran it by hand). Its checklist is not posted yet."""

    run_id: int
    runbook_id: str
    version: str
    sha256: str
    actor: str
    deprecated: bool = False
    repinned: str | None = None  # the same version pinned before with other content: that sha256
    by_hand: bool = False


@event
class RunNotAttached(Event):
    """Routing named a runbook for a new item that could not be attached (retired, invalid ...)."""

    runbook_id: str
    reason: str


@event
class RunStarted(Event):
    """A run that routing attached got its inputs and started (`/runbook run ID INC-n k=v`)."""

    run_id: int
    runbook_id: str
    version: str
    actor: str


@event
class RunChanged(Event):
    """Something about a run changed that its checklist shows (a call's state, an approval round)."""

    run_id: int


@event
class RunFinished(Event):
    """Every step of a run is over: `completed`, or `stopped` by a rejection."""

    run_id: int
    runbook_id: str
    state: str


@event
class StepOpened(Event):
    """A step's prerequisites are met: people can act on it, or (http) the executor can."""

    run_id: int
    step_id: str
    step_type: str  # manual | approval | http


@event
class StepActed(Event):
    """What a person's action on a step carries (the base of the two below; not published itself)."""

    run_id: int
    runbook_id: str
    step_id: str
    verb: str
    actor: str
    reason: str | None
    before: str  # the step's state before
    after: str


@event
class StepCompleted(StepActed):
    """A person did, skipped or worked around a step (`verb`: done | skip | workaround).

    Heard before the transaction commits: a handler may still refuse it by raising."""


@event
class ApprovalDecided(StepActed):
    """A person approved or rejected an approval step (`verb`: approve | reject); `after` is
    approved once enough approvals are in, rejected, or still open."""

    approvals: int  # distinct approvals so far
    needed: int  # min_approvals


# --------------------------------------------------------------------------- rollouts


@event
class RolloutChanged(Event):
    """A fleet rollout (a `foreach: tenants` step) moved: `what` is started, wave, approval,
    progress, halted, resumed, aborted, rolling_back, rolled_back or completed. `wave` is the wave it
    is about, `tenants` the tenants that just started or finished it, `note` why (a halt's reason)."""

    run_id: int
    rollout_id: int
    step_id: str
    what: str
    actor: str
    wave: int = 0
    tenants: tuple[str, ...] = ()
    note: str | None = None


# --------------------------------------------------------------------------- remediation


@event
class ApprovalRequested(Event):
    """An approval gate asks (again) for approval of the exact requests it lets through."""

    run_id: int
    round_id: int
    number: int  # 1 for the first request of this gate, then 2, 3 ...
    gate_id: str
    runbook_id: str
    version: str
    requester: str
    requests: Mapping[str, Mapping[str, Any]]  # step id -> the rendered request, secrets as markers
    expires_at: datetime | None
    expires_after: timedelta | None
    why: str | None


@event
class CallFinished(Event):
    """An http step's call has an outcome (`succeeded`, `failed`, `unknown`, or a person's
    `retry` / confirmation); `action` is the audit action it was recorded as."""

    run_id: int
    call_id: int
    step_id: str
    action: str
    actor: str
    outputs: Mapping[str, Any] = field(default_factory=dict)


@event
class GateReopened(Event):
    """An approval gate is asked again (the request changed, or the approval lapsed)."""

    run_id: int
    gate_id: str
    why: str


# --------------------------------------------------------------------------- SLA clocks


@event
class ClockWarned(Event):
    """A running clock used `fraction` of its target (a `warn_at` mark)."""

    clock_id: int
    target: str  # response | update | resolution
    target_seconds: int
    fraction: float
    left: timedelta


@event
class ClockBreached(Event):
    """A clock's target passed while it was still running."""

    clock_id: int
    target: str
    target_seconds: int
    due_at: datetime | None


@event
class EscalationPaged(Event):
    """One level of an escalation chain was paged (`users` may be empty: nobody to page)."""

    timer_id: int
    chain: str
    level: int  # 1-based
    levels: int
    round: int  # 1-based
    rounds: int
    notify: tuple[str, ...]  # as the policy writes them (oncall:TEAM, role:NAME ...)
    users: tuple[str, ...]


@event
class EscalationExhausted(Event):
    """Every round of a chain was paged and nobody acknowledged."""

    chain: str
    rounds: int


# --------------------------------------------------------------------------- customer notices


@event
class NoticeDraftPosted(Event):
    """A customer notice in review was drafted, edited, narrowed or decided: its reviewers' DMs show
    it (posted, or edited in place when `in_place`). `draft` is the row as it stood then; `previews`
    the exact notice each tenant would get."""

    draft: NoticeDraft
    previews: tuple[Preview, ...]
    in_place: bool = False


@event
class LoopsOverdue(Event):
    """An item resolved `loops.report_after` ago still has feedback loops open: `still_open` as
    (audience, target) pairs; `to` is whom to tell (its comms owner or owner, else the ops channel)."""

    still_open: tuple[tuple[str, str], ...]
    to: str


# --------------------------------------------------------------------------- reviews and follow-ups


@event
class FollowUpCreated(Event):
    """A follow-up (`ACT-n`) was made on a work item."""

    followup: FollowUp
    actor: str


@event
class FollowUpClosed(Event):
    """A follow-up was closed with a note."""

    followup: FollowUp
    actor: str


@event
class FollowUpReminded(Event):
    """A follow-up is due soon or overdue (`stage`): its owner is reminded (the `reminders`-th time)."""

    followup: FollowUp
    stage: str  # soon | overdue
    reminders: int


@event
class ReviewReminded(Event):
    """A review was drafted with no owner, or is due soon or overdue (`stage`): its owner is reminded,
    or, when nobody owns it, each of `assigners` (the people who may give it one) is asked."""

    review: Review
    stage: str  # drafted | soon | overdue
    reminders: int
    assigners: tuple[str, ...] = ()


@event
class ReviewChanged(Event):
    """A review was drafted, saved, submitted, published or given another owner (`what`); `doc` is its
    newest version and `followups` its item's follow-ups."""

    review: Review
    what: str  # drafted | saved | submitted | published | owner
    actor: str
    doc: Mapping[str, Any]
    followups: tuple[FollowUp, ...] = ()
    by: str = ""  # the person whose change drafted it (who resolved it): they see it in the thread, no DM


@event
class Recurred(Event):
    """A new work item hit a theme whose follow-ups were all closed (`text`: "recurred 9 days after
    ACT-4 was closed")."""

    theme: str
    followup: str
    text: str
