"""The notification budget: one post per audience and recipient per state change, and no post
that says nothing (a #sales post beside the owner's DM, a product post about no customer)."""

from __future__ import annotations

from collections import Counter

from sqlmodel import col, select

from opsloop.comms.models import NoticeDraft
from opsloop.core import Core
from opsloop.models import OutboxMessage
from opsloop.types import Severity
from tests.support import FakeClock

COMMANDER = "U0RESP1"
# The README's number: one sev1 touching two tenants, declared, acknowledged, mitigated and resolved,
# with its customer notices sent from review, posts 22 internal messages (edits in place aside). A
# resolved sev1 drafts its review (issue 20): its summary and its document in the thread are two more;
# its owner resolved it and reads them there, so gets no DM about it.
INTERNAL_POSTS = {
    "card:INC-1": 1,                    # the card (edited in place from then on)
    "thread": 6,                        # the checklist, a line per change (ack, mitigate, resolve), the
                                        # review's summary and its document
    "U0SALES1": 2, "U0SALES2": 2,       # each account's sales owner: start and resolution, by DM
    "C0SUPPORT": 2, "C0PRODUCT": 2,     # support and product channels: start and resolution
    "U0CSM1": 1,                        # the CSM: Acme turned at-risk
    "U0RESP1": 3, "U0ADMIN": 3,         # each reviewer (no comms owner): three drafts to send or skip
}


def outbox(services: Core) -> list[OutboxMessage]:
    with services.db.transaction() as s:
        return list(s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))


def send_pending(services: Core) -> None:
    with services.db.transaction() as s:
        [draft] = s.exec(select(NoticeDraft).where(NoticeDraft.status == "pending")).all()
    services.commands.press("notice.send", str(draft.id), actor=COMMANDER)


def test_one_sev1_with_two_tenants_from_declare_to_resolve_posts_a_bounded_number_of_messages(
    services: Core, clock: FakeClock
) -> None:
    services.workitems.declare(actor=COMMANDER, title="EU database primary down", severity=Severity.SEV1,
                               tenants=["acme", "globex"])
    clock.advance(minutes=2)
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="acknowledge")
    clock.advance(minutes=3)
    services.sweeper.sweep()  # the hold ends: the customers' first notice is drafted
    send_pending(services)
    clock.advance(minutes=10)
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="mitigate")
    send_pending(services)
    clock.advance(minutes=10)
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="resolve")
    send_pending(services)
    rows = outbox(services)
    internal = [m for m in rows if m.transport == "chat" and m.update_key is None
                and m.payload.get("op") != "channel.create"]
    posts = Counter("thread" if m.thread_key else ("card:INC-1" if m.key == "card:INC-1" else m.target)
                    for m in internal)
    assert dict(posts) == INTERNAL_POSTS
    assert len(internal) == sum(INTERNAL_POSTS.values()) == 22
    customers = Counter(m.target for m in rows if m.transport == "email")
    assert customers == {"ops@acme.example": 3, "it@globex.example": 3}  # start, update, resolution


def test_an_item_without_tenants_posts_nothing_to_product(services: Core) -> None:
    services.workitems.declare(actor=COMMANDER, title="Build farm down", severity=Severity.SEV1)
    texts = [str(m.payload) for m in outbox(services)]
    assert not any(m.target == "C0PRODUCT" for m in outbox(services))
    assert not any("0 tenant(s)" in text for text in texts)


def test_an_escalation_tells_the_sales_owner_by_dm_and_not_sales_again(services: Core) -> None:
    services.workitems.open_escalation(actor="U0CSM1", title="Acme cannot export invoices",
                                       severity=Severity.SEV2, tenants=["acme"])
    targets = [m.target for m in outbox(services)]
    assert "U0SALES1" in targets and "C0SALES" not in targets
    services.workitems.open_escalation(actor="U0CSM1", title="Someone cannot log in", severity=Severity.SEV2)
    assert [m.target for m in outbox(services)].count("C0SALES") == 1  # nobody else to tell: #sales hears


def test_the_product_packet_says_keeps_hurting_only_once_a_theme_came_back(services: Core) -> None:
    services.workitems.open_escalation(actor="U0CSM1", title="exports fail", labels={"theme": "exports"},
                                       tenants=["acme", "globex", "initech"])
    [first] = [m for m in outbox(services) if m.key.startswith("priority:")]
    assert first.payload["message"]["text"] == "Product priority: theme:exports hurt 3 customers at once"
    services.workitems.open_escalation(actor="U0CSM1", title="exports fail", labels={"theme": "sso"},
                                       tenants=["acme"])
    services.workitems.open_escalation(actor="U0CSM1", title="sso loops", labels={"theme": "sso"},
                                       tenants=["globex", "initech"])
    [*_, second] = [m for m in outbox(services) if m.key.startswith("priority:")]
    assert second.payload["message"]["text"] == "Product priority: theme:sso keeps hurting customers"
