"""The rollout tables: one `Rollout` per `foreach: tenants` step run, one `RolloutTarget` per tenant.

A rollout's targets are chosen and ordered when its run starts and pinned
there (`position`, `wave`); a tenant added to the catalog later is not called.

    rollout:  pinned ─► running ◄─► pausing (pause_between) · approval (a wave waits for approvers)
              running ─► completed · halted (the error budget ran out) ─► running (Resume)
              halted ─► aborted (Abort) · rolling_back ─► rolled_back (Roll back)

    target:   waiting ─► pending (its wave started) ─► sending ─► succeeded | failed | unknown
              waiting | pending ─► skipped (aborted, or rolled back before it was called)
              succeeded ─► rollback_pending ─► rollback_sending ─► rolled_back | rollback_failed
                                                                    | rollback_unknown

`sending` is committed before a request leaves, with a lease; a worker that
dies mid-call leaves its tenants `sending` until the lease ends, and they
become `unknown` for a person to settle — never sent again by themselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field

from opsloop.models import IdRow, json_column, utc_column

# rollout states
PINNED, RUNNING, PAUSING, APPROVAL = "pinned", "running", "pausing", "approval"
HALTED, ABORTED, ROLLING_BACK = "halted", "aborted", "rolling_back"
COMPLETED, ROLLED_BACK = "completed", "rolled_back"
ROLLOUT_OVER = frozenset({COMPLETED, ABORTED, ROLLED_BACK})

# target states
WAITING, PENDING, SENDING = "waiting", "pending", "sending"
SUCCEEDED, FAILED, UNKNOWN, SKIPPED = "succeeded", "failed", "unknown", "skipped"
RB_PENDING, RB_SENDING = "rollback_pending", "rollback_sending"
ROLLED, RB_FAILED, RB_UNKNOWN = "rolled_back", "rollback_failed", "rollback_unknown"
ERRORS = frozenset({FAILED, UNKNOWN})  # what the error budget counts (but not an orphaned unknown)
TARGET_OVER = frozenset({SUCCEEDED, FAILED, UNKNOWN, SKIPPED, ROLLED, RB_FAILED, RB_UNKNOWN})
CLAIMABLE = frozenset({PENDING, RB_PENDING})
IN_FLIGHT = frozenset({SENDING, RB_SENDING})


class Rollout(IdRow, table=True):
    __tablename__ = "rollouts"
    __table_args__ = (
        UniqueConstraint("run_id", "step_id", name="uq_rollouts_run_step"),
        Index("ix_rollouts_state", "state"),
    )

    run_id: int = Field(foreign_key="runbook_runs.id", ondelete="CASCADE")
    step_id: str = Field(max_length=64)
    work_item_id: int = Field(foreign_key="work_items.id", index=True, ondelete="CASCADE")
    state: str = Field(max_length=16)
    targets: int = 0
    wave: int = 0  # the current wave (index into the step's waves)
    waves: list[int] = json_column(list)  # how many tenants each wave takes, pinned with the targets
    allowed_errors: int = 0  # the budget, as a count of the pinned targets
    forgiven: int = 0  # errors counted before the last Resume (a person looked at them)
    next_wave_at: datetime | None = utc_column()  # pausing: when the next wave may start
    approvals: list[dict[str, Any]] = json_column(list)  # the current wave's: [{"by", "at", "binding"}]
    binding: str | None = Field(default=None, max_length=64)  # SHA-256 of the waiting wave's requests
    approval_expires_at: datetime | None = utc_column()
    clock_id: int | None = Field(default=None, foreign_key="sla_clocks.id", ondelete="SET NULL")
    halted_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    decided_by: str | None = Field(default=None, max_length=64)  # who resumed, aborted or rolled back
    created_at: datetime = utc_column(nullable=False)
    started_at: datetime | None = utc_column()
    updated_at: datetime = utc_column(nullable=False)
    finished_at: datetime | None = utc_column()


class RolloutTarget(IdRow, table=True):
    __tablename__ = "rollout_targets"
    __table_args__ = (
        UniqueConstraint("rollout_id", "tenant_id", name="uq_rollout_targets_tenant"),
        Index("ix_rollout_targets_claim", "rollout_id", "state", "position"),
    )

    rollout_id: int = Field(foreign_key="rollouts.id", ondelete="CASCADE")
    tenant_id: str = Field(max_length=64)
    position: int
    wave: int
    state: str = Field(max_length=20)
    generation: int = 1  # part of the Idempotency-Key; a retry after a definite failure is a new call
    request: dict[str, Any] = json_column(dict)  # as rendered when its wave started (secrets as markers)
    attempts: int = 0
    status: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # secrets scrubbed
    rollback_status: int | None = None
    rollback_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    claimed_by: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = utc_column()
    # its worker died mid-call: unknown, for a person to settle, but no sign the tenant is at fault,
    # so it does not count against the error budget
    orphaned: bool = False
    # `tenant_windows: respect`: pending, but not claimed before its maintenance window opens then
    not_before: datetime | None = utc_column()
    waits_for: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # the reason, said
    started_at: datetime | None = utc_column()
    finished_at: datetime | None = utc_column()


def key_of(rollout_id: int, target: RolloutTarget, *, rollback: bool) -> str:
    """A tenant's Idempotency-Key: the same for every attempt of its call (its rollback has its own)."""
    if rollback:
        return f"opsloop-ro{rollout_id}-{target.tenant_id}-rollback"
    return f"opsloop-ro{rollout_id}-{target.tenant_id}-g{target.generation}"
