"""Issue 22 part 5 through issue 17's review: each tenant's customers hear when its wave starts and when
it is done only once a person allowed `notice.approve` sends the draft; a wave that is done before
anyone sent its start never sends the stale start; each reads of itself only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from opsloop.comms.models import NoticeDraft
from opsloop.core import Core
from opsloop.errors import DomainError, PermissionDenied
from opsloop.models import OutboxMessage
from tests.core.rollouts.conftest import FLEET, Target, fleet_core, start
from tests.support import FakeClock

COMMANDER, RESPONDER = "U0RESP1", "U0RESP2"
# four tenants, a canary then the rest, ten minutes apart
PACED = FLEET.replace("select: {exclude: [acme, globex, initech]}", "select: {ids: [t01, t02, t03, t04]}").replace(
    "waves: [{name: canary, size: 1}, {percent: 10}, {percent: 40}, {rest: true}]",
    "waves: [{name: canary, size: 1}, {rest: true}]\n    pause_between: 10m")


@pytest.fixture
def paced(db_url: str, fleet_dir: tuple[Path, Path], clock: FakeClock, target: Target) -> Iterator[Core]:
    (fleet_dir[0] / "fleet-patch.yaml").write_text(PACED)
    with fleet_core(db_url, fleet_dir, clock, target) as built:
        yield built


def mails(services: Core) -> dict[str, list[str]]:
    """Each tenant's customer emails (subjects), checking each names its own tenant and nobody else."""
    with services.db.transaction() as s:
        rows = s.exec(select(OutboxMessage).where(OutboxMessage.transport == "email")
                      .order_by(col(OutboxMessage.id))).all()
    out: dict[str, list[str]] = {}
    for row in rows:
        tenant = row.target.removeprefix("ops@").removesuffix(".example")
        body = row.payload["body"]
        assert f"Tenant {tenant} team" in body
        assert [t for t in ("t01", "t02", "t03", "t04") if t != tenant and t in body] == []
        assert "CVE" not in body and "INC-1" not in body  # no internal words
        out.setdefault(tenant, []).append(row.payload["subject"])
    return out


def pending(services: Core) -> list[NoticeDraft]:
    with services.db.transaction() as s:
        return list(s.exec(select(NoticeDraft).where(NoticeDraft.status == "pending").order_by(col(NoticeDraft.id))))


def send_all(services: Core) -> None:
    for draft in pending(services):
        services.commands.press("notice.send", str(draft.id), actor=COMMANDER)


STARTS, DONE = "Maintenance on your service is starting", "Maintenance on your service is done"


def test_no_customer_hears_of_a_wave_before_a_person_sends_it(paced: Core, clock: FakeClock,
                                                              target: Target) -> None:
    target.fail = {"t03"}
    start(paced)                                             # the canary wave (t01) starts
    [canary] = pending(paced)
    assert (canary.event, canary.tenants) == ("rollout_start", ["t01"])
    assert mails(paced) == {}                                # a draft in review: nothing sent
    with paced.db.transaction() as s:
        dm = s.exec(select(OutboxMessage).where(OutboxMessage.key == f"draft:{canary.id}:{COMMANDER}")).one()
    assert "Hello Tenant t01 team" in dm.payload["message"]["body"]  # the exact text, for review
    assert "t01" not in canary.text  # the draft's own words name no tenant
    with pytest.raises(PermissionDenied):
        paced.commands.press("notice.send", str(canary.id), actor=RESPONDER)
    assert mails(paced) == {}
    paced.commands.press("notice.send", str(canary.id), actor=COMMANDER)
    assert mails(paced) == {"t01": [STARTS]}

    paced.rollout_worker.work()                              # the canary is done; a pause follows
    [done] = pending(paced)
    assert (done.event, done.tenants) == ("rollout_done", ["t01"])
    assert mails(paced) == {"t01": [STARTS]}
    send_all(paced)
    assert mails(paced) == {"t01": [STARTS, DONE]}

    clock.advance(minutes=10)
    paced.rollout_worker.work()                              # the rest start and finish before anyone sends
    assert sorted(target.called()) == ["t01", "t02", "t03", "t04"]
    assert [(d.event, d.tenants) for d in pending(paced)] == [
        ("rollout_start", ["t03"]),                          # its start, narrowed to the one that did not finish
        ("rollout_done", ["t02", "t04"])]
    assert mails(paced) == {"t01": [STARTS, DONE]}
    send_all(paced)
    assert mails(paced) == {"t01": [STARTS, DONE], "t02": [DONE], "t03": [STARTS], "t04": [DONE]}


def test_a_draft_of_a_wave_cannot_be_edited_only_sent_or_skipped(paced: Core) -> None:
    start(paced)
    [canary] = pending(paced)
    with pytest.raises(DomainError, match="Send it or Skip it"):
        paced.commands.submit("notice.edit", str(canary.id), {"text": "Patching now"}, actor=COMMANDER)
    paced.commands.press("notice.skip", str(canary.id), actor=COMMANDER)
    assert mails(paced) == {} and pending(paced) == []
