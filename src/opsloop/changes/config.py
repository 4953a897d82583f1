"""The `changes` section of the policy file (owned here; `opsloop.policy` imports it)."""

from __future__ import annotations

from datetime import timedelta

from opsloop.fields import Duration, Strict


class ChangesPolicy(Strict):
    # a change this long before an incident started (or any time while it is open) is shown with it
    window: Duration = timedelta(hours=2)
