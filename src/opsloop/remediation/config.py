"""Approved remediation's part of the policy (`actions:`): which hosts and secrets http steps may use."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from opsloop.fields import Size, Strict


class Actions(Strict):
    allow_hosts: list[str] = []  # exact names, or `*.example.com`
    secrets: dict[str, Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]] = {}
    allow_loopback: bool = False  # 127.0.0.0/8 and ::1 (link-local and metadata never)
    # the largest answer read from an API (bytes, or `512KiB`, `1MiB`); a larger one fails the step
    max_response: Annotated[Size, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    # http steps called at the same time (one slow API never holds up the calls of other work items)
    concurrency: Annotated[int, Field(ge=1, le=32)] = 4
