"""Approved public updates and public items: what the status pages may read."""

from __future__ import annotations

from datetime import timedelta

from opsloop.comms.models import (
    PublicItem,
    PublicUpdate,
    is_public,
    last_public_update,
    public_item_ids,
    public_updates,
)
from opsloop.core import Core
from opsloop.types import Severity

COMMANDER = "U0RESP1"


def test_a_tenant_reads_the_updates_for_everyone_and_its_own_and_the_public_page_only_the_first(
    services: Core,
) -> None:
    item = services.workitems.declare(actor=COMMANDER, title="Checkout down", severity=Severity.SEV2,
                                      tenants=["acme", "globex"])
    assert item.id is not None
    now = services.clock.now()
    with services.db.transaction() as s:
        s.add(PublicUpdate(work_item_id=item.id, state="investigating", event="start", text="Looking",
                           approved_by=COMMANDER, approved_at=now))
        s.add(PublicUpdate(work_item_id=item.id, tenant_id="globex", state="investigating", event="start",
                           text="For globex", approved_by=COMMANDER, approved_at=now + timedelta(minutes=1)))
        s.add(PublicUpdate(work_item_id=item.id, state="resolved", event="resolution", text="Fixed",
                           approved_by=COMMANDER, approved_at=now + timedelta(minutes=2)))
    with services.db.transaction() as s:
        assert [u.text for u in public_updates(s, item.id)] == ["Looking", "Fixed"]
        assert [u.text for u in public_updates(s, item.id, tenant="acme")] == ["Looking", "Fixed"]
        assert [u.text for u in public_updates(s, item.id, tenant="globex")] == ["Looking", "For globex", "Fixed"]
        last = last_public_update(s, item.id, tenant="globex")
        assert last is not None and last.text == "Fixed"
        assert not is_public(s, item.id) and public_item_ids(s) == []
        s.add(PublicItem(work_item_id=item.id, set_by=COMMANDER, set_at=now))
    with services.db.transaction() as s:
        assert is_public(s, item.id) and public_item_ids(s) == [item.id]
