"""Alerts a maintenance window holds: recorded on the window (`MNT-n`) instead of opening an
incident, with what is needed to open one for them if they still fire when the window ends.

A held alert is an ordinary alert row whose work item is the window: a sender
repeating it, resolving it or firing it again updates that row, as for any
alert, and nothing is opened or paged. `Intake.release` (at the window's end)
opens incidents for those still firing, one per Alertmanager group (or joins
the group's incident if one is open), through routing, as if they had just
fired.
"""

from __future__ import annotations

from typing import Any

from opsloop import audit
from opsloop.intake.batch import Batch, NewAlert, Outcome
from opsloop.maintenance.models import Holding

HELD = "held"  # the key, in a held alert's context, of what its incident will need


def hold(batch: Batch, window: Holding, alert: NewAlert, outcome: Outcome, *, title: str,
         labels: dict[str, str], severity: str | None = None, group: dict[str, Any] | None = None) -> None:
    """Record a new alert on the window that holds it (audited), opening nothing (the caller has
    locked the window's work item into the batch)."""
    alert.work_item_id = window.work_item_id
    alert.context = {**alert.context, HELD: {"title": title, "labels": labels, "severity": severity,
                                             "group": group}}
    batch.add(alert)
    outcome.touched.append(window.ref)
    audit.record(batch.session, at=batch.now, actor=f"system:{alert.integration}",
                 action="maintenance.alert_held", subject=window.ref,
                 after={"integration": alert.integration, "key": alert.key, "labels": labels})


def keep_held(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A held alert sent again keeps what its incident will need."""
    return {**new, HELD: old[HELD]} if HELD in old else new

