"""Every module that defines tables, imported so `SQLModel.metadata` knows them all.

Alembic's environment and the tests import this; a new table module adds a line here.
"""

from __future__ import annotations

import opsloop.changes.models
import opsloop.comms.models
import opsloop.compliance.models
import opsloop.digest.models
import opsloop.feeds.models
import opsloop.health.models
import opsloop.heartbeats.models
import opsloop.history.models
import opsloop.incident_roles.models
import opsloop.intake.models
import opsloop.loops.models
import opsloop.maintenance.models
import opsloop.models
import opsloop.oncall_models
import opsloop.remediation.models
import opsloop.replays
import opsloop.reviews.models
import opsloop.rollouts.models
import opsloop.runbooks.models
import opsloop.schedules.models
import opsloop.sla.models
import opsloop.status.models
import opsloop.timers.models  # noqa: F401
