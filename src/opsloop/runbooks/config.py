"""The runbooks' part of the policy (`runbooks:`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from opsloop.fields import Duration, Strict


class Redesign(Strict):
    """When one step of a runbook is bypassed (skipped, worked around) more than `threshold`
    times within `window`, its owners are told the runbook needs a redesign."""

    threshold: Annotated[int, Field(ge=1, le=1000)]
    window: Duration
    channel: str | None = None  # post there, mentioning the owners, instead of a DM to each


class RunbooksPolicy(Strict):
    redesign: Redesign | None = None
