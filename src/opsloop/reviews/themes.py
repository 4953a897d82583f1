"""An item's theme: what its follow-ups are about, and what a later item recurs on.

The most specific of: the `theme:` label, the `service` label, the runbook (a `runbook` label, else
the runbook its run pinned). One theme per item, so a shared fallback runbook never makes two
unrelated incidents look like a recurrence when a more specific theme is known.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from opsloop.models import WorkItem
from opsloop.runbooks.models import RunbookRun


def theme_of(session: Session, item: WorkItem) -> str | None:
    for label in ("theme", "service", "runbook"):
        if item.labels.get(label):
            return f"{label}:{item.labels[label]}"
    pinned = session.exec(select(RunbookRun.runbook_id).where(RunbookRun.work_item_id == item.id)
                          .order_by(col(RunbookRun.id))).first()
    return f"runbook:{pinned}" if pinned else None
