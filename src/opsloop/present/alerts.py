"""What an alert-born incident's card says of its alerts, and of the recent changes on its service.

    *3 alerts on checkout-api* · service: checkout-api · tenant: acme · namespace: prod
    Summary: 5xx above 5% on checkout
    Description: ...
    Source · Silence · Grafana dashboard           (links)
    Recent changes: deploy v1.4.2 by ci, 12 min before

and a *Runbook ↗* button for the alert's `runbook_url`.
"""

from __future__ import annotations

from datetime import timedelta

from opsloop.changes.service import RecentChange
from opsloop.intake.context import AlertContext
from opsloop.messages import Button, escape, link, link_button

MAX_TEXT = 500


def alert_lines(context: AlertContext) -> list[str]:
    count = f"{context.total} alert{'s' if context.total != 1 else ''} on {escape(context.on)}"
    lines = [" · ".join([f"*{count}*", *(f"{escape(k)}: {escape(v)}" for k, v in context.labels)])]
    if context.summary:
        lines.append(f"Summary: {escape(_cut(context.summary))}")
    if context.description and context.description != context.summary:
        lines.append(f"Description: {escape(_cut(context.description))}")
    ends = (("Source", context.source_url), ("Silence", context.silence_url))
    shown = [link(url, name) for name, url in ends if url is not None]
    shown += [link(href, text) for href, text in context.links]
    shown += [link(src, f"🖼 {alt}") for src, alt in context.images]
    if shown:
        lines.append(" · ".join(shown))
    return lines


def alert_buttons(context: AlertContext) -> list[Button]:
    return [link_button("Runbook ↗", context.runbook_url)] if context.runbook_url else []


def changes_line(changes: list[RecentChange]) -> str | None:
    """`Recent changes: deploy v1.4.2 by ci, 12 min before; ...` (None when there are none)."""
    if not changes:
        return None
    return "Recent changes: " + "; ".join(change_text(c) for c in changes)


def change_text(change: RecentChange) -> str:
    who = f" by {escape(change.source)}" if change.source else ""
    what = escape(_cut(change.summary, 200))
    if change.links:
        what = link(change.links[0][0], _cut(change.summary, 200))
    return f"{what}{who}, {relative(change.before)}"


def relative(before: timedelta) -> str:
    """12 min before, 1 h 5 min before, 3 min after, at the same time."""
    minutes = int(abs(before.total_seconds()) // 60)
    if minutes == 0:
        return "at the same time"
    hours, minutes = divmod(minutes, 60)
    span = " ".join(part for part in (f"{hours} h" if hours else "", f"{minutes} min" if minutes else "")
                    if part)
    return f"{span} {'before' if before > timedelta(0) else 'after'}"


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
