"""Recurrence across two incidents of one theme, and the digest's overdue reviews, follow-ups, recurrences."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import select

from opsloop.core import Core
from opsloop.models import OutboxMessage
from opsloop.present import digest as render
from opsloop.reviews.models import ItemTheme
from opsloop.types import Severity
from tests.support import FakeClock

RESP1, RESP2 = "U0RESP1", "U0RESP2"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def declare(services: Core, title: str, tenants: tuple[str, ...] = ("acme",), **labels: str) -> str:
    return services.workitems.declare(actor=RESP1, title=title, severity=Severity.SEV2, tenants=tenants,
                                      labels=labels).ref


def test_an_incident_on_a_theme_whose_followups_were_all_closed_recurred(
        services: Core, clock: FakeClock) -> None:
    first = declare(services, "EU primary down", service="db-eu")
    services.commands.handle("/incident", f'followup {first} "Alert on replica lag" @{RESP2} due:3d', actor=RESP1)
    services.commands.handle("/incident", f'followup {first} "Automate failover" due:5d', actor=RESP1)
    services.commands.handle("/incident", f"resolve {first}", actor=RESP1)  # sev2: its review is drafted
    declare(services, "Other service down", service="api")  # another theme: nothing to say
    clock.current = utc(2026, 11, 24, 9, 0)
    services.commands.handle("/followup", 'close ACT-1 "alert added"', actor=RESP2)
    again = declare(services, "EU primary slow", service="db-eu")  # ACT-2 is still open: no recurrence
    assert "Recurred" not in dict(services.cards.of(again).fields)

    clock.current = utc(2026, 11, 25, 10, 0)
    services.commands.handle("/followup", 'close ACT-2 "failover is one command now"', actor=RESP1)
    clock.current = utc(2026, 12, 4, 11, 0)  # nine days later
    third = declare(services, "EU primary down again", ("acme", "globex"), service="db-eu")
    said = "recurred 9 days after ACT-2 was closed"
    assert dict(services.cards.of(third).fields)["Recurred"] == f"♻️ {said}"
    view, _ = services.reviews.draft(actor=RESP1, ref=third)
    assert view.doc["recurrence"] == said
    with services.db.transaction() as session:
        themes = {t.work_item_id: t.theme for t in session.exec(select(ItemTheme))}
        thread = [m.payload["message"]["text"] for m in session.exec(select(OutboxMessage).where(
            OutboxMessage.thread_key == f"card:{third}")) if "message" in m.payload]
    assert sorted(set(themes.values())) == ["service:api", "service:db-eu"]
    assert f"♻️ {third} {said} (theme service:db-eu)" in thread
    with services.db.transaction() as session:  # 576,000 ARR on the theme: the product channel hears it
        [packet] = [m.payload["message"] for m in session.exec(select(OutboxMessage).where(
            OutboxMessage.target == "C0PRODUCT")) if m.key.startswith("priority:")]
    assert packet["text"] == "Product priority: service:db-eu keeps hurting customers"
    assert f"*Recurred*: {third} {said}" in packet["body"]

    digest = services.digests.build(now=utc(2026, 12, 5, 7, 0))
    text = render.text(digest)
    assert f"♻️ {third} {said}: EU primary down again" in text
    assert f"review of {first} overdue" in text  # drafted 23 Nov, due after five working days


def test_the_digest_lists_overdue_followups(services: Core, clock: FakeClock) -> None:
    ref = declare(services, "Checkout slow", service="checkout")
    services.commands.handle("/incident", f'followup {ref} "Cache the price lookup" @{RESP2} due:1d', actor=RESP1)
    digest = services.digests.build(now=utc(2026, 11, 26, 7, 0))
    figures = digest.figures.reviews
    assert [(late.ref, late.owner) for late in figures.followups_overdue] == [("ACT-1", RESP2)]
    assert "• ACT-1 overdue by" in render.text(digest) and "Cache the price lookup" in render.text(digest)
    assert figures.reviews_overdue == []
