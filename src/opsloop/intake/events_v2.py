"""PagerDuty's Events API v2, with PagerDuty's semantics.

- `trigger`: a key whose incident is open is deduplicated (the incident is
  touched, nothing new is opened); otherwise a new incident is opened, its
  labels mapped from the event (`integrations[].label_map`, see
  `opsloop.intake.config`), so routing, runbooks and tenants work as for
  Alertmanager.
- `acknowledge`: the incident is acknowledged by the integration, which never
  becomes its owner (an owner is a person).
- `resolve`: the incident is resolved, and the key is free: the next trigger
  with it opens a new incident.

(Alertmanager's own webhook keeps SPEC's rule instead: resolved alerts mitigate.)
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from opsloop.intake.batch import Batch, NewAlert, Outcome
from opsloop.intake.config import label_map, mapped_labels
from opsloop.intake.held import hold, keep_held
from opsloop.intake.payloads import EVENTS_V2_SEVERITY, V2Event
from opsloop.policy import Policy
from opsloop.types import SYSTEM_PREFIX, State

if TYPE_CHECKING:
    from opsloop.intake.service import Intake

_RESOLVABLE = (State.TRIGGERED.value, State.ACKNOWLEDGED.value, State.MITIGATED.value)


class EventsV2:
    def __init__(self, intake: Intake, policy: Policy) -> None:
        self.intake = intake
        self.maps = {i.name: label_map(i.label_map) for i in policy.integrations if i.kind == "events_v2"}

    def labels(self, integration: str, fields: dict[str, Any]) -> dict[str, str]:
        """An event's labels: its source and severity, and what the integration's label map finds."""
        return mapped_labels(fields, self.maps.get(integration, label_map({})))

    def handle(self, batch: Batch, name: str, event: V2Event, generated: str | None) -> Outcome:
        intake, s, now = self.intake, batch.session, batch.now
        key = event.dedup_key or generated or uuid.uuid4().hex
        outcome = Outcome(dedup_key=key)
        row = batch.find(name, [key]).get(key)
        if event.event_action == "trigger":
            assert event.payload is not None
            context = _context(event)
            if row is not None:
                intake.update(batch, row, firing=True, summary=event.payload.summary)
                row.context = keep_held(row.context, context)
                outcome.touched.append(intake.item(batch, row.work_item_id).ref)
                return outcome
            labels = {"source": event.payload.source, "severity": event.payload.severity,
                      **self.labels(name, event.payload.fields())}
            window = batch.holding(labels)
            if window is not None:  # planned work: recorded on the window, no incident, no page
                intake.item(batch, window.work_item_id)
                hold(batch, window, NewAlert(
                    integration=name, key=key, work_item_id=window.work_item_id,
                    summary=event.payload.summary, labels=labels, first_seen_at=now, last_seen_at=now,
                    context=context), outcome, title=event.payload.summary, labels=labels,
                    severity=event.payload.severity)
                return outcome
            item = intake.open(batch, name, event.payload.summary, labels,
                               severity=EVENTS_V2_SEVERITY[event.payload.severity])
            assert item.id is not None
            batch.add(NewAlert(integration=name, key=key, work_item_id=item.id,
                               summary=event.payload.summary, labels=labels, first_seen_at=now,
                               last_seen_at=now, context=context))
            outcome.created.append(item.ref)
            return outcome
        if row is None:
            return outcome  # acknowledging or resolving what is not open: accepted, nothing to do
        item = intake.item(batch, row.work_item_id)
        outcome.touched.append(item.ref)
        actor = f"{SYSTEM_PREFIX}{name}"
        if event.event_action == "acknowledge":
            if item.state == State.TRIGGERED.value:
                intake.items.act_in(s, item, actor=actor, action="acknowledge",
                                    note="acknowledged by the monitoring source", debounce=intake.debounce)
            return outcome
        intake.update(batch, row, firing=False, summary=row.summary)
        row.active = False  # the key is free: the next trigger opens a new incident
        if item.state in _RESOLVABLE:
            batch.insert_new()  # a key triggered and resolved in one batch: its row must exist now
            intake.items.act_in(s, item, actor=actor, action="resolve",
                                note="resolved by the monitoring source")
        return outcome


def _context(event: V2Event) -> dict[str, Any]:
    """What the card shows beyond labels: links, images, and a link back to the sender."""
    context: dict[str, Any] = {}
    if event.links:
        context["links"] = [{"href": link.href, "text": link.text} for link in event.links]
    if event.images:
        context["images"] = [{"src": i.src, "href": i.href, "alt": i.alt} for i in event.images]
    if event.client_url:
        context["client_url"] = event.client_url
        context["client"] = event.client or "the alert source"
    return context
