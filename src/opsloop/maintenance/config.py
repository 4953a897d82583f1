"""The `maintenance` section of the policy file (owned here; `opsloop.policy` imports it).

    maintenance:
      require_approval: false   # true: a window waits for another person allowed maintenance.approve
      max_length: 7d            # the longest window that may be scheduled
      silence_timeout: 5s       # each call to an Alertmanager API mirroring a window as a silence
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field

from opsloop.fields import Duration, Strict


class MaintenancePolicy(Strict):
    require_approval: bool = False
    max_length: Annotated[Duration, Field(gt=timedelta(0), le=timedelta(days=90))] = timedelta(days=7)
    silence_timeout: Annotated[Duration, Field(gt=timedelta(0), le=timedelta(seconds=30))] = \
        timedelta(seconds=5)
