"""The `audit` and `retention` sections of the policy file.

    audit:
      checkpoint_every: 1h              # sign the chain's head this often (needs OPSLOOP_AUDIT_SIGNING_KEY)
      checkpoint_to: audit-checkpoints  # a directory (relative to the policy file), or an https:// URL
    retention: {outbox: 90d, signals: 400d, timeline_text: 730d}

Defined here, next to the feature, and imported by `opsloop.policy` (this
module imports nothing of the policy, so there is no cycle).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from pydantic import field_validator

from opsloop.fields import Duration, Strict

_ENV = re.compile(r"^env:[A-Z_][A-Z0-9_]*$")


class AuditPolicy(Strict):
    checkpoint_every: Duration = timedelta(hours=1)
    # where each checkpoint is written, outside the database: a directory (the outbox's
    # file transport) or an HTTPS endpoint such as a WORM bucket's (the webhook transport);
    # `env:NAME` reads the URL from the environment when it carries a token
    checkpoint_to: str | None = None

    @field_validator("checkpoint_every")
    @classmethod
    def _not_too_often(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("checkpoints are signed at most once a minute: write 1m or more")
        return value

    @field_validator("checkpoint_to")
    @classmethod
    def _destination(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value:
            raise ValueError("give a directory or an https:// URL (or remove the key)")
        if "://" in value and not value.startswith("https://"):
            raise ValueError("a checkpoint endpoint must be https://")
        if value.startswith("env:") and not _ENV.fullmatch(value):
            raise ValueError("write env:NAME with NAME an environment variable (A-Z, 0-9, _)")
        return value

    def destination(self, path_of: Callable[[str], Path]) -> tuple[str, str] | None:
        """(transport, target) of the outbox for `checkpoint_to`, or None when it is not set;
        `path_of` places a relative directory (next to the policy file)."""
        if self.checkpoint_to is None:
            return None
        if self.checkpoint_to.startswith(("https://", "env:")):
            return "webhook", self.checkpoint_to
        return "file", str(path_of(self.checkpoint_to).resolve())


class Retention(Strict):
    """How long data is kept; a key left out keeps that data for good."""

    outbox: Duration | None = None  # delivered, failed and cancelled messages (bodies and attempts)
    signals: Duration | None = None  # customer-health signals
    timeline_text: Duration | None = None  # the words of timeline lines (the line itself stays)

    @field_validator("outbox", "signals", "timeline_text")
    @classmethod
    def _at_least_a_day(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(days=1):
            raise ValueError("retention is applied daily: write 1d or more")
        return value
