"""A tenant's status page never shows another tenant; the public page shows none.

A property over random tenants and random multi-tenant incidents (whose
internal titles name every tenant), through the real path: the database, the
page builder, the HTML templates and the Atom writer.
"""

from __future__ import annotations

import html

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsloop.comms.models import PublicItem, PublicUpdate
from opsloop.core import Core
from opsloop.models import Account
from opsloop.present import status_pages as present
from opsloop.types import Severity
from tests.support import FakeClock

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # a property of rendering, not storage

token = st.text(alphabet="bcdfghjkmnpqrstvwxz", min_size=8, max_size=12)
tenant = st.builds(lambda name, ident, tier: Account(id=f"t-{ident}", name=f"Zq{name.title()} & <Co>",
                                                     tier=tier, contact_email=f"ops-{ident}@{name}.example"),
                   token, token, st.sampled_from(["enterprise", "mid-market", "smb"]))
tenants = st.lists(tenant, min_size=2, max_size=4, unique_by=(lambda a: a.id, lambda a: a.name))


def traces(account: Account) -> list[str]:
    name = account.name.split(" & ")[0]
    return [account.id, account.contact_email or "", name, html.escape(account.name), account.name]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(accounts=tenants, data=st.data())
def test_each_tenants_page_and_feed_show_only_that_tenant(
        services: Core, clock: FakeClock, accounts: list[Account], data: st.DataObject) -> None:
    with services.db.transaction() as session:  # merged: hypothesis replays examples on the same database
        for account in accounts:
            session.merge(Account.model_validate(account.model_dump()))
    keys: dict[str, set[str]] = {a.id: set() for a in accounts}
    memo = {a.id: f"memo-{a.id}" for a in accounts}  # the words of the updates sent to it alone
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="incidents")):
        touched = data.draw(st.lists(st.sampled_from(accounts), min_size=1, unique_by=lambda a: a.id),
                            label="tenants")
        severity = data.draw(st.sampled_from(list(Severity)), label="severity")
        title = data.draw(st.text(max_size=40), label="title") + " " + " ".join(a.name for a in accounts)
        item = services.workitems.declare(actor="U0RESP1", title=title.strip()[:200], severity=severity,
                                          tenants=[a.id for a in touched])
        for a in touched:
            keys[a.id].add(services.status_links.opaque(f"item:{item.id}"))
        with services.db.transaction() as session:  # approved: one update for all, one per tenant touched
            assert item.id is not None
            now = clock.now()
            session.add(PublicUpdate(work_item_id=item.id, state="triggered", event="update",
                                     text=f"everyone {title[:40]}".split(" Zq")[0], approved_by="U0RESP1",
                                     approved_at=now))
            session.add_all(PublicUpdate(work_item_id=item.id, tenant_id=a.id, state="triggered", event="update",
                                         text=f"memo {memo[a.id]}", approved_by="U0RESP1", approved_at=now)
                            for a in touched)
            if data.draw(st.booleans(), label="public"):
                session.merge(PublicItem(work_item_id=item.id, set_by="U0RESP1", set_at=now))
        clock.advance(minutes=data.draw(st.integers(min_value=1, max_value=90), label="minutes"))
    public = present.public_html(services.status_pages.public(), feed_url="status/feed.atom")
    for account in accounts:
        page = services.status_pages.tenant(services.status_links.link(account.id, actor="system:cli"))
        assert page is not None
        assert keys[account.id] <= {i.key for i in page.incidents}  # its incidents, and
        assert not set().union(*(keys[o.id] - keys[account.id] for o in accounts)) & {i.key for i in page.incidents}
        shown = present.tenant_html(page, feed_url="x/feed.atom") + present.atom(
            page.incidents, title=f"Service status for {page.name}", key=page.feed_key, at=page.at,
            page_url="https://s.example/status/t/x", self_url="https://s.example/status/t/x/feed.atom").decode()
        assert html.escape(account.name) in shown  # its own page
        assert keys[account.id] == set() or memo[account.id] in shown  # with the updates sent to it
        for other in accounts:
            if other.id != account.id:
                leaked = [t for t in [*traces(other), memo[other.id]] if t in shown]
                assert leaked == [], f"{account.id}'s page shows {other.id}: {leaked}"
        # the public page names no tenant and shows no update meant for one tenant
        assert [t for t in [*traces(account), memo[account.id]] if t in public] == []
