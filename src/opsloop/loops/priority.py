"""Customer issue to product priority.

When work items with the same theme (a `theme:` label, the `service` label,
or the runbook) touch at least `min_tenants` tenants or `min_arr` of ARR
within `window`, the product channel gets one evidence packet for that
theme (and no other for the same theme within the window).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from opsloop import outbox
from opsloop.loops.context import money
from opsloop.loops.models import PriorityNotice, ThemeHit
from opsloop.messages import Message, escape
from opsloop.models import Account, WorkItem, WorkItemTenant
from opsloop.outbox import CHAT
from opsloop.policy import Policy
from opsloop.reviews import recurrence

THEME_LABELS = ("theme", "service", "runbook")


def themes_of(item: WorkItem) -> list[str]:
    return [f"{label}:{item.labels[label]}" for label in THEME_LABELS if item.labels.get(label)]


class ProductPriorityRule:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.rule = policy.product_priority

    def observe(self, session: Session, item: WorkItem, accounts: list[Account], now: datetime) -> None:
        if self.rule is None or item.id is None:
            return
        for theme in themes_of(item):
            seen = session.exec(select(ThemeHit.id).where(
                ThemeHit.work_item_id == item.id, ThemeHit.theme == theme)).first()
            if seen is None:
                session.add(ThemeHit(work_item_id=item.id, theme=theme, at=now))
                session.flush()
            self._check(session, theme, now)

    def _check(self, session: Session, theme: str, now: datetime) -> None:
        assert self.rule is not None
        since = now - self.rule.window
        recent = session.exec(select(PriorityNotice.id).where(
            PriorityNotice.theme == theme, col(PriorityNotice.at) >= since)).first()
        if recent is not None:
            return
        rows = session.exec(
            select(Account, WorkItem)
            .join(WorkItemTenant, col(WorkItemTenant.tenant_id) == col(Account.id))
            .join(WorkItem, col(WorkItem.id) == col(WorkItemTenant.work_item_id))
            .join(ThemeHit, col(ThemeHit.work_item_id) == col(WorkItem.id))
            .where(ThemeHit.theme == theme, col(ThemeHit.at) >= since)
        ).all()
        accounts = {a.id: a for a, _ in rows}
        items = sorted({i.ref for _, i in rows}, key=lambda ref: (ref.split("-")[0], int(ref.split("-")[1])))
        recurred = recurrence.of_items(session, {i.id for _, i in rows if i.id is not None})
        again = sorted(f"{i.ref} {recurred[i.id]}" for i in {i.id: i for _, i in rows}.values()
                       if i.id in recurred)
        arr = sum(a.arr for a in accounts.values())
        enough_tenants = len(accounts) >= self.rule.min_tenants
        enough_arr = self.rule.min_arr is not None and arr >= self.rule.min_arr
        if not (enough_tenants or enough_arr):
            return
        session.add(PriorityNotice(theme=theme, at=now, tenants=len(accounts), arr=arr))
        outbox.enqueue(session, transport=CHAT, target=self.policy.channel(self.rule.channel), now=now,
                       key=f"priority:{theme}:{now.isoformat()}",
                       payload={"message": self._packet(theme, accounts, items, arr, now, again).to_json()})

    def _packet(self, theme: str, accounts: dict[str, Account], refs: list[str], arr: int,
                now: datetime, recurred: list[str] | None = None) -> Message:
        assert self.rule is not None
        soon = [a for a in accounts.values()
                if a.renewal_date is not None and a.renewal_date <= (now + timedelta(days=90)).date()]
        ratio = len(accounts) / self.rule.min_tenants
        confidence = "high" if ratio >= 2 or len(refs) >= 2 * self.rule.min_tenants else (
            "medium" if len(refs) > 1 else "low")
        who = "\n".join(
            f"• {escape(a.name)} ({a.tier}, ARR {money(a.arr)}"
            + (f", renews {a.renewal_date}" if a.renewal_date else "") + ")"
            for a in sorted(accounts.values(), key=lambda a: -a.arr))
        # "keeps hurting" is a claim about recurrence: only once the theme came back in another item
        hurts = "keeps hurting customers" if len(refs) > 1 else f"hurt {len(accounts)} customers at once"
        return Message(
            text=f"Product priority: {escape(theme)} {hurts}",
            fields=[("Tenants", str(len(accounts))), ("ARR affected", money(arr)),
                    ("Renewing within 90 days", str(len(soon))), ("Confidence", confidence)],
            body=f"*Who*\n{who}\n*Workflow*: {escape(theme)}\n"
                 f"*Business impact*: {money(arr)} ARR across {len(accounts)} tenants"
                 + (f", {money(sum(a.arr for a in soon))} renewing within 90 days" if soon else "")
                 + f"\n*Work items*: {', '.join(refs)}"
                 + (f"\n*Recurred*: {'; '.join(recurred)}" if recurred else ""),
            context=f"within the last {self.rule.window.days or 1} day(s)",
        )
