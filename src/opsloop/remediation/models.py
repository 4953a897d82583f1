"""The remediation tables: each http step run's call, and each round of an approval gate.

A `RemediationCall` is the state machine of one http step run:

    pending ─► approved ─► sending ─► succeeded | failed | unknown
       ▲          │                        │          │
       └──────────┘ (the approval no longer matches, or lapsed: the gate asks again)
                                           └─ retry ──┘ (a person decides; never by itself)

`sending` is committed before a request leaves; `lease_until` bounds how long
the claiming worker may take, after which a sweep turns a `sending` call into
`unknown` (its worker died mid-call) for a person to confirm or retry.

An `ApprovalRound` is one request of an approval gate: the message that asked,
what the gated requests looked like then (`binding`: http step id -> SHA-256),
and until when its approvals count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text
from sqlmodel import Field

from opsloop.models import IdRow, json_column, utc_column

PENDING, APPROVED, SENDING = "pending", "approved", "sending"
SUCCEEDED, FAILED, UNKNOWN = "succeeded", "failed", "unknown"
CALL_STATES = (PENDING, APPROVED, SENDING, SUCCEEDED, FAILED, UNKNOWN)


class RemediationCall(IdRow, table=True):
    __tablename__ = "remediation_calls"
    __table_args__ = (Index("ix_remediation_calls_state", "state", "id"),)

    step_run_id: int = Field(foreign_key="runbook_step_runs.id", unique=True, ondelete="CASCADE")
    run_id: int = Field(foreign_key="runbook_runs.id", index=True, ondelete="CASCADE")
    step_id: str = Field(max_length=64)
    state: str = Field(max_length=16)
    generation: int = 1  # part of the Idempotency-Key; a retry after a definite failure is a new call
    # how many times a person asked to retry it; its buttons carry this, so a button of an earlier
    # outcome (a late double click, an old message) cannot retry or settle a later one
    retries: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    request: dict[str, Any] = json_column(dict)  # method, url, headers, json: secrets as markers
    binding: str | None = Field(default=None, max_length=64)
    attempts: int = 0
    status: int | None = None
    address: str | None = Field(default=None, max_length=64)  # the checked address it was pinned to
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # secrets scrubbed
    claimed_by: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = utc_column()
    created_at: datetime = utc_column(nullable=False)
    updated_at: datetime = utc_column(nullable=False)
    finished_at: datetime | None = utc_column()
    decided_by: str | None = Field(default=None, max_length=64)  # who confirmed an unknown outcome


class ApprovalRound(IdRow, table=True):
    __tablename__ = "approval_rounds"
    __table_args__ = (Index("ix_approval_rounds_step_run", "step_run_id", "number"),)

    step_run_id: int = Field(foreign_key="runbook_step_runs.id", ondelete="CASCADE")
    number: int
    binding: dict[str, Any] = json_column(dict)  # gated http step id -> SHA-256 of its request
    requested_at: datetime = utc_column(nullable=False)
    expires_at: datetime | None = utc_column()  # the request, then (once approved) the approval
    closed_at: datetime | None = utc_column()
    outcome: str | None = Field(default=None, max_length=16)  # approved | rejected | expired | changed


def idempotency_key(call: RemediationCall) -> str:
    """The same for every attempt of one step run (and for a retry of an unknown outcome)."""
    return f"opsloop-sr{call.step_run_id}-g{call.generation}"
