"""Which labels an Events API v2 event becomes (`integrations[].label_map`).

An Alertmanager alert carries labels; a PagerDuty event carries a summary, a
source, `component`, `group`, `class` and free-form `custom_details`. Routing,
runbooks, tenants and maintenance windows all work on labels, so an event's
fields are mapped to labels: by default `component`, `group` and `class` keep
their names and `custom_details.tenant` / `custom_details.service` become
`tenant` and `service`; an integration's `label_map` adds to or replaces those
(label -> path), e.g. `{team: custom_details.owner.team, service: component}`.

Defined apart from `opsloop.policy` (which imports it) so intake owns it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

LabelName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=100)]
# a field of the event's payload: one of the fixed ones, or a dotted path into custom_details
PayloadPath = Annotated[str, Field(
    pattern=r"^(summary|source|severity|component|group|class|custom_details(\.[^.\s]+)+)$",
    max_length=200)]

DEFAULT_LABEL_MAP: Mapping[str, str] = {
    "component": "component", "group": "group", "class": "class",
    "tenant": "custom_details.tenant", "service": "custom_details.service",
}
MAX_LABEL_VALUE = 1024


def label_map(custom: Mapping[str, str]) -> dict[str, str]:
    """An integration's map over the defaults."""
    return {**DEFAULT_LABEL_MAP, **custom}


def mapped_labels(payload: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, str]:
    """The labels `mapping` (label -> path) finds in an event's `payload`; absent, empty or
    structured values (objects, lists) give no label, numbers and booleans their text."""
    labels: dict[str, str] = {}
    for label, path in mapping.items():
        value = _at(payload, path)
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            text = str(value).strip()
        else:
            continue
        if text:
            labels[label] = text[:MAX_LABEL_VALUE]
    return labels


def _at(payload: Mapping[str, Any], path: str) -> Any:
    head, _, rest = path.partition(".")
    value: Any = payload.get(head)
    for part in rest.split(".") if rest else []:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value
