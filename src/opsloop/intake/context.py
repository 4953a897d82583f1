"""What the alerts of an alert-born incident said, as data for its card (`present.alerts` words it).

Read in three small queries however many alerts an incident has: the counts,
its Alertmanager group (common labels and annotations, Alertmanager's URL),
and its first alert (annotations, the generator URL; Events v2 links).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sqlalchemy import func
from sqlmodel import Session, col, select

from opsloop.intake.models import Alert, AlertGroup
from opsloop.intake.payloads import web_url
from opsloop.models import WorkItem

# labels that say which machine, not what is wrong: left off the card
NOISE = frozenset({"alertname", "severity", "instance", "pod", "pod_name", "container", "container_name",
                   "endpoint", "prometheus", "prometheus_replica", "receive", "replica", "id", "uid",
                   "__name__", "flapping"})
FIRST = ("service", "tenant", "namespace", "cluster", "env", "environment", "region", "team", "job")
MAX_LABELS = 8


@dataclass(frozen=True)
class AlertContext:
    firing: int
    resolved: int
    on: str  # what the group is about: its group labels' values, the service, or the alert's name
    labels: list[tuple[str, str]] = field(default_factory=list)  # the labels worth reading
    summary: str = ""
    description: str = ""
    runbook_url: str | None = None
    source_url: str | None = None  # the alert's generator (a Prometheus graph)
    silence_url: str | None = None  # Alertmanager's "new silence" form, filled in for the group
    links: list[tuple[str, str]] = field(default_factory=list)  # (href, text)
    images: list[tuple[str, str]] = field(default_factory=list)  # (src, alt)

    @property
    def total(self) -> int:
        return self.firing + self.resolved


def alert_context(session: Session, item: WorkItem) -> AlertContext | None:
    counts = dict(session.exec(select(Alert.status, func.count()).where(Alert.work_item_id == item.id)
                               .group_by(Alert.status)).all())
    if not counts:
        return None
    first = session.exec(select(Alert).where(Alert.work_item_id == item.id)
                         .order_by(col(Alert.status) != "firing", col(Alert.id)).limit(1)).one()
    group = session.exec(select(AlertGroup).where(AlertGroup.work_item_id == item.id)
                         .order_by(col(AlertGroup.id).desc()).limit(1)).first()
    seen: dict[str, Any] = group.context if group is not None else {}
    common = _strings(seen.get("common_labels")) or dict(first.labels)
    grouped = {k: v for k, v in _strings(seen.get("group_labels")).items() if k != "alertname"}
    annotations = {**_strings(first.context.get("annotations")), **_strings(seen.get("common_annotations"))}
    alertname = common.get("alertname") or first.labels.get("alertname", "")
    on = ", ".join(grouped.values()) or common.get("service") or common.get("source") or alertname or "—"
    links = [(str(link.get("href")), str(link.get("text") or link.get("href")))
             for link in first.context.get("links", []) if isinstance(link, dict)]
    if first.context.get("client_url"):
        links.append((str(first.context["client_url"]), f"View in {first.context.get('client')}"))
    images = [(str(i.get("src")), str(i.get("alt") or "image"))
              for i in first.context.get("images", []) if isinstance(i, dict)]
    external = str(seen.get("external_url") or "")
    return AlertContext(
        firing=int(counts.get("firing", 0)), resolved=int(counts.get("resolved", 0)), on=on,
        labels=worth_reading(common), summary=annotations.get("summary", ""),
        description=annotations.get("description", ""),
        runbook_url=_url(annotations.get("runbook_url")),
        source_url=_url(first.context.get("generator_url")),
        silence_url=silence_link(external, grouped | {"alertname": alertname} if alertname else grouped)
        if web_url(external) else None,
        links=[(href, text) for href, text in links if web_url(href)],
        images=[(src, alt) for src, alt in images if web_url(src)],
    )


def worth_reading(labels: dict[str, str]) -> list[tuple[str, str]]:
    """The labels a responder reads first (service, tenant, namespace ...), then the rest by name."""
    kept = {k: v for k, v in labels.items() if k not in NOISE and not k.startswith("__") and v}
    order = [k for k in FIRST if k in kept] + sorted(k for k in kept if k not in FIRST)
    return [(k, kept[k]) for k in order[:MAX_LABELS]]


def silence_link(external_url: str, matchers: dict[str, str]) -> str | None:
    """Alertmanager's new-silence form with the group's matchers filled in (`{a="b",c="d"}`)."""
    if not matchers:
        return None
    inner = ",".join(f'{k}="{_quoted(v)}"' for k, v in sorted(matchers.items()))
    link = f"{external_url.rstrip('/')}/#/silences/new?filter={quote('{' + inner + '}', safe='')}"
    return link if web_url(link) else None


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _url(value: Any) -> str | None:
    return value if isinstance(value, str) and web_url(value) else None


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
