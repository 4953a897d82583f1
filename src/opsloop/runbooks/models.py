"""The runbook tables: pinned snapshots, runs on work items, and each step's state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field

from opsloop.models import IdRow, json_column, utc_column


class RunbookSnapshot(IdRow, table=True):
    """The exact bytes of one runbook version as it was first used; runs render from these."""

    __tablename__ = "runbook_snapshots"
    __table_args__ = (Index("ix_runbook_snapshots_runbook_version", "runbook_id", "version"),)

    runbook_id: str = Field(max_length=64)
    version: str = Field(max_length=64)
    sha256: str = Field(max_length=64, unique=True)
    content: str = Field(sa_column=Column(Text, nullable=False))
    first_seen: datetime = utc_column(nullable=False)


class RunbookRun(IdRow, table=True):
    """A runbook running on a work item, pinned to one snapshot with its inputs."""

    __tablename__ = "runbook_runs"

    work_item_id: int = Field(foreign_key="work_items.id", index=True, ondelete="CASCADE")
    snapshot_id: int = Field(foreign_key="runbook_snapshots.id", index=True)
    runbook_id: str = Field(max_length=64, index=True)
    inputs: dict[str, Any] = json_column(dict)
    state: str = Field(max_length=16)  # needs_inputs | running | completed | stopped
    started_by: str = Field(max_length=64)
    created_at: datetime = utc_column(nullable=False)
    started_at: datetime | None = utc_column()
    finished_at: datetime | None = utc_column()


class RunbookStepRun(IdRow, table=True):
    """One step of a run: its state, who moved it, why, and what it produced."""

    __tablename__ = "runbook_step_runs"
    __table_args__ = (
        UniqueConstraint("run_id", "step_id", name="uq_runbook_step_runs_run_step"),
        Index("ix_runbook_step_runs_step_state", "step_id", "state"),
    )

    run_id: int = Field(foreign_key="runbook_runs.id", index=True, ondelete="CASCADE")
    step_id: str = Field(max_length=64)
    position: int
    state: str = Field(max_length=16)
    actor: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    outputs: dict[str, Any] = json_column(dict)
    approvals: list[dict[str, Any]] = json_column(list)  # [{"by": U..., "at": iso}]
    updated_at: datetime = utc_column(nullable=False)
    finished_at: datetime | None = utc_column(index=True)
