"""Change events: `POST /hooks/events/v2/change/enqueue` stores them; incidents on the same service
(the `service` label) show those from `changes.window` before they started until they end.

PagerDuty calls this Recent Changes. The changes an incident shows are also
written on its timeline when it opens (`present.changes`), so the post-incident
record keeps them whatever arrives later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from opsloop.changes.config import ChangesPolicy
from opsloop.changes.models import ChangeEvent
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.intake.config import label_map, mapped_labels
from opsloop.intake.payloads import ChangeEvent as ChangePayload
from opsloop.models import WorkItem
from opsloop.policy import Policy

MAX_SHOWN = 5


@dataclass(frozen=True)
class RecentChange:
    summary: str
    source: str | None
    happened_at: datetime
    before: timedelta  # how long before the incident started (negative: after)
    links: list[tuple[str, str]]


class Changes:
    def __init__(self, db: Database, policy: Policy, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.config: ChangesPolicy = policy.changes
        self.maps = {i.name: label_map(i.label_map) for i in policy.integrations if i.kind == "events_v2"}

    def record(self, integration: str, event: ChangePayload) -> ChangeEvent:
        """Store one change event; its labels are mapped as the integration's alerts' are."""
        now = self.clock.now()
        labels = mapped_labels(event.payload.fields(), self.maps.get(integration, label_map({})))
        service = (labels.get("service") or "")[:255] or None  # the column's width; longer is no service name
        row = ChangeEvent(integration=integration, summary=event.payload.summary,
                          source=event.payload.source, service=service, labels=labels,
                          links=[{"href": link.href, "text": link.text} for link in event.links],
                          happened_at=event.payload.timestamp or now, received_at=now)
        with self.db.transaction() as session:
            session.add(row)
        return row

    def recent(self, session: Session, item: WorkItem) -> list[RecentChange]:
        """Changes on the item's service from `changes.window` before it started until it ended."""
        service = item.labels.get("service")
        if not service:
            return []
        since, until = item.created_at - self.config.window, item.resolved_at or self.clock.now()
        rows = session.exec(select(ChangeEvent).where(
            ChangeEvent.service == service, col(ChangeEvent.happened_at) >= since,
            col(ChangeEvent.happened_at) <= until,
        ).order_by(col(ChangeEvent.happened_at).desc()).limit(MAX_SHOWN))
        return [RecentChange(summary=row.summary, source=row.source, happened_at=row.happened_at,
                             before=item.created_at - row.happened_at, links=_links(row.links))
                for row in rows]


def _links(stored: list[object]) -> list[tuple[str, str]]:
    return [(str(link["href"]), str(link.get("text") or link["href"])) for link in stored
            if isinstance(link, dict) and "href" in link]
