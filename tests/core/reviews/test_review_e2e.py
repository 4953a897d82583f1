"""Done when: a sev1 driven through declare, page, acknowledgement, an approved remediation, a skipped
step, notices and resolution drafts a review whose timeline lists each with its time, and whose impact
shows the tenants, ARR and SLA outcomes (FakeClock; the remediation's far side is respx)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import respx
import yaml
from sqlmodel import col, select

from opsloop.comms.models import NoticeDraft
from opsloop.core import Core
from opsloop.errors import DomainError, PermissionDenied
from opsloop.models import AuditEvent, OutboxMessage
from opsloop.outbox import CHAT, Dispatcher
from opsloop.reviews.models import ReviewVersion
from opsloop.reviews.service import canonical
from opsloop.table import Sources, assemble
from opsloop.types import Severity
from tests.core.remediation.conftest import API, SECRET, FakeResolver
from tests.support import ROOT, FakeClock, RecordingSender

RESP1, RESP2, SRE1, ADMIN = "U0RESP1", "U0RESP2", "U0SRE1", "U0ADMIN"
DRILL = """schema_version: 1
id: drill
version: 1.0.0
title: Fail the EU primary over
owners: [U0SRE1]
inputs:
  service: {type: string, pattern: "^[a-z-]+$", required: true}
steps:
  - id: check
    type: manual
    title: "Check the replica's lag for {{ inputs.service }}"
  - id: gate
    type: approval
    approvers: role:approver
    min_approvals: 1
  - id: failover
    type: http
    requires: [gate]
    request:
      method: POST
      url: "https://ops-api.internal/services/{{ inputs.service }}/failover"
      headers: {Authorization: "Bearer {{ secrets.OPS_API_TOKEN }}"}
    expect: {status: [200, 202]}
    timeout: 20s
"""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def drill(db_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Core]:
    yield from build(db_url, tmp_path, clock)


@pytest.fixture
def paging_drill(db_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Core]:
    """A policy where declaring is not responding: the sev1's chain pages, as it does when the person
    declaring is not the one who will work it (`sla.declared_meets_response: false`)."""
    yield from build(db_url, tmp_path, clock, declared_meets_response=False)


def build(db_url: str, tmp_path: Path, clock: FakeClock, *,
          declared_meets_response: bool = True) -> Iterator[Core]:
    runbooks = tmp_path / "runbooks"
    shutil.copytree(ROOT / "runbooks", runbooks)
    (runbooks / "drill.yaml").write_text(DRILL)
    policy = yaml.safe_load((ROOT / "opsloop.yml").read_text())
    policy["actions"]["allow_hosts"] = ["ops-api.internal"]
    policy["accounts"] = str(ROOT / "accounts.yml")
    policy["sla"]["declared_meets_response"] = declared_meets_response
    config = tmp_path / "opsloop.yml"
    config.write_text(yaml.safe_dump(policy))
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as api:
        api.post(f"https://{API}/services/db/failover").mock(return_value=httpx.Response(202))
        built = assemble(Sources(database_url=db_url, config=config, runbooks_dir=runbooks), clock=clock,
                         http_client=httpx.Client(), resolver=FakeResolver(),
                         environ={"OPS_API_TOKEN": SECRET}, sleep=lambda _: None)
        yield built
        built.db.dispose()


def send_pending(services: Core, actor: str = RESP1) -> None:
    """A person allowed `notice.approve` presses Send on the one customer draft in review."""
    with services.db.transaction() as session:
        [draft] = session.exec(select(NoticeDraft).where(NoticeDraft.status == "pending")).all()
    services.commands.press("notice.send", str(draft.id), actor=actor)


def customers_told(services: Core, clock: FakeClock) -> None:
    """The item outlives the hold and its customers are sent their first notice (an item resolved
    within the hold never reaches its customers: there would be nobody to send its account to)."""
    clock.advance(minutes=5)
    services.sweeper.sweep()
    send_pending(services)


def deliver(services: Core, clock: FakeClock) -> None:
    senders = {t: RecordingSender() for t in (CHAT, "email", "webhook")}
    Dispatcher(services.db, senders, clock).drain()


def test_a_sev1_from_declaration_to_its_drafted_review(paging_drill: Core, clock: FakeClock) -> None:
    s = paging_drill
    s.commands.handle("/incident", 'declare "EU primary down" sev1 tenant:acme tenant:globex runbook:drill',
                      actor=RESP1)                                  # 09:00, pages at once
    s.sweeper.sweep()
    deliver(s, clock)                                               # start notices reach their audiences
    clock.current = utc(2026, 11, 23, 9, 4)
    s.sweeper.sweep()                                               # 75% of the 5m response target
    s.commands.handle("/incident", "ack INC-1", actor=RESP2)       # 09:04
    clock.current = utc(2026, 11, 23, 9, 5)
    s.sweeper.sweep()                                               # the hold ends: the customers' draft
    clock.current = utc(2026, 11, 23, 9, 6)
    send_pending(s)                                                 # 09:06, the commander sends it
    deliver(s, clock)
    clock.current = utc(2026, 11, 23, 9, 10)
    s.commands.handle("/runbook", "run drill INC-1 service=db", actor=RESP1)
    s.commands.handle("/runbook", "skip INC-1 check the replica dashboards were down", actor=RESP1)
    clock.current = utc(2026, 11, 23, 9, 12)
    s.commands.handle("/runbook", "approve INC-1 gate", actor=SRE1)
    assert s.remediation.work() == 1                                # the failover call, 202
    clock.current = utc(2026, 11, 23, 9, 40)
    s.sweeper.sweep()                                               # no update for 30 minutes: breached
    clock.current = utc(2026, 11, 23, 9, 50)
    s.commands.handle("/incident", "resolve INC-1 failed over to the replica", actor=RESP2)  # sev1: drafted

    view = s.reviews.get("INC-1")
    assert (view.review.state, view.review.version, view.review.owner) == ("draft", 1, RESP1)
    timeline = [(e["at"], e["what"]) for e in view.doc["timeline"]]
    texts = {e["what"]: e for e in view.doc["timeline"]}
    assert ("2026-11-23T09:00:00+00:00", "created") in timeline
    assert ("2026-11-23T09:00:00+00:00", "escalation.page") in timeline
    assert ("2026-11-23T09:04:00+00:00", "sla.warning") in timeline
    assert ("2026-11-23T09:04:00+00:00", "acknowledge") in timeline
    assert ("2026-11-23T09:10:00+00:00", "runbook.step.skip") in timeline
    assert "the replica dashboards were down" in texts["runbook.step.skip"]["text"]
    assert ("2026-11-23T09:12:00+00:00", "runbook.step.approve") in timeline
    assert any(at == "2026-11-23T09:12:00+00:00" and what.startswith("remediation.")
               for at, what in timeline), timeline
    assert ("2026-11-23T09:40:00+00:00", "sla.breached") in timeline
    assert ("2026-11-23T09:50:00+00:00", "resolve") in timeline
    notices = [(e["at"], e["audience"], e["tenant"], e["status"]) for e in view.doc["timeline"]
               if e["what"] == "notice"]
    assert ("2026-11-23T09:00:00+00:00", "sales", None, "delivered") in notices  # internal: at once
    assert ("2026-11-23T09:06:00+00:00", "customers", "acme", "delivered") in notices  # after hold and Send
    assert ("2026-11-23T09:06:00+00:00", "customers", "globex", "delivered") in notices
    assert ("2026-11-23T09:50:00+00:00", "sales", None, "queued") in notices  # the resolution notice
    # the customers' resolution notice is a draft in review when the review is drafted: not sent yet
    assert not [n for n in notices if n[1] == "customers" and n[0] == "2026-11-23T09:50:00+00:00"]
    assert [at for at, _ in timeline] == sorted(at for at, _ in timeline)

    impact = view.doc["impact"]
    assert [(t["id"], t["tier"], t["arr"]) for t in impact["tenants"]] == [
        ("acme", "enterprise", 480000), ("globex", "mid-market", 96000)]
    assert (impact["arr"], impact["tiers"]) == (576000, {"enterprise": 1, "mid-market": 1})
    assert (impact["impact_minutes"], impact["customer_minutes"], impact["duration_seconds"]) == (50, 100, 3000)
    sla = {c["target"]: c for c in impact["sla"]}
    assert (sla["response"]["state"], sla["response"]["stopped_at"]) == ("met", "2026-11-23T09:04:00+00:00")
    assert (sla["resolution"]["state"], sla["resolution"]["stopped_at"]) == ("met", "2026-11-23T09:50:00+00:00")
    assert any(c["state"] == "breached" and c["target"] == "update" for c in impact["sla"])
    assert view.doc["summary"].startswith("INC-1 “EU primary down” (sev1) was declared at 2026-11-23 09:00 UTC, "
                                          "acknowledged after 4m")

    document = s.commands.handle("/incident", "review INC-1", actor=RESP1)
    assert document.text.startswith("Here is the review of INC-1 (draft, version 1)")
    with s.db.transaction() as session:
        doc_row = session.exec(select(OutboxMessage).where(OutboxMessage.key == "review:INC-1:doc")).one()
    markdown = doc_row.payload["markdown"]
    assert "- Tenants (2): Acme Corp (enterprise, ARR 480,000), Globex (mid-market, ARR 96,000)" in markdown
    assert "- SLA response (5m): met at 2026-11-23 10:04:00 CET" in markdown
    assert "— @U0RESP2 acknowledged INC-1" in markdown


def test_versions_owner_lifecycle_and_a_published_review_is_immutable(drill: Core, clock: FakeClock) -> None:
    s = drill
    s.workitems.declare(actor=RESP1, title="Checkout slow", tenants=["acme"])  # sev3: no review by itself
    s.workitems.act(actor=RESP1, ref="INC-1", action="resolve")
    with pytest.raises(DomainError, match="has no review yet"):
        s.reviews.get("INC-1")
    assert s.commands.handle("/incident", "review INC-1", actor=RESP1).text.startswith(
        "Drafted the review of INC-1 (draft, version 1)")
    with pytest.raises(PermissionDenied):
        s.commands.handle("/incident", 'review INC-1 section:went_well "paging"', actor="U0CSM1")
    s.commands.handle("/incident", 'review INC-1 section:went_well "paging reached the on-call in seconds"',
                      actor=RESP1)
    form = s.commands.press("review.edit", "INC-1", actor=RESP1).form
    assert form is not None and [f.name for f in form.fields][:2] == ["summary", "contributing_factors"]
    s.commands.submit("review.edit", "INC-1", {"contributing_factors": "a full disk on the primary",
                                                "went_badly": "no alert on disk usage"}, actor=RESP1)
    with pytest.raises(DomainError, match="submit it for review first"):
        s.commands.press("review.publish", "INC-1", actor=RESP1)
    s.commands.press("review.submit", "INC-1", actor=RESP1)
    published = s.commands.press("review.publish", "INC-1", actor=RESP1)
    view = s.reviews.get("INC-1")
    assert (view.review.state, view.review.version) == ("published", 3)
    assert view.review.sha256 == hashlib.sha256(canonical(view.doc, view.followups)).hexdigest()
    assert published.text == f"Published the review of INC-1 (sha256 {view.review.sha256})."
    with s.db.transaction() as session:
        versions = [(v.version, v.saved_by, v.content.get("went_well")) for v in session.exec(
            select(ReviewVersion).order_by(col(ReviewVersion.version)))]
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "review.published")).one()
    assert versions == [(1, RESP1, ""), (2, RESP1, "paging reached the on-call in seconds"),
                        (3, RESP1, "paging reached the on-call in seconds")]
    assert event.after == {"version": 3, "sha256": view.review.sha256}
    for attempt in ('review INC-1 section:summary "rewritten"', "review INC-1 submit"):
        with pytest.raises(DomainError, match="published"):
            s.commands.handle("/incident", attempt, actor=RESP1)
    assert json.loads(json.dumps(view.doc)) == view.doc


def test_the_customer_account_goes_to_each_customer_naming_only_itself(drill: Core, clock: FakeClock) -> None:
    s = drill
    s.workitems.declare(actor=RESP1, title="Acme and Globex exports fail", severity=Severity.SEV2,
                        tenants=["acme", "globex"])
    customers_told(s, clock)
    s.workitems.act(actor=RESP1, ref="INC-1", action="resolve")
    sections = {"contributing_factors": "a full disk", "went_well": "paging", "went_badly": "no disk alert",
                "public_what_happened": "Exports failed because a database ran out of disk space.",
                "public_what_we_changed": "We added disk alerts and doubled the space."}
    s.reviews.save(actor=RESP1, ref="INC-1", values=sections)
    with pytest.raises(DomainError, match="publish the review of INC-1 first"):
        s.commands.press("review.share", "INC-1", actor=RESP1)
    s.commands.press("review.submit", "INC-1", actor=RESP1)
    s.commands.press("review.publish", "INC-1", actor=RESP1)
    reply = s.commands.handle("/incident", "review INC-1 share", actor=RESP1)
    assert reply.text.startswith("Drafted the customer account of INC-1 for 2 customer(s): acme, globex, "
                                 "for review by <@U0RESP1>, <@U0ADMIN>")

    def review_mails() -> dict[str, dict[str, str]]:
        with s.db.transaction() as session:
            return {m.target: m.payload for m in session.exec(select(OutboxMessage).where(
                OutboxMessage.transport == "email", col(OutboxMessage.key).like("loop:%:review:%")))}

    assert review_mails() == {}  # a customer notice in review: nobody hears before someone sends it
    with s.db.transaction() as session:
        pending = session.exec(select(NoticeDraft).where(NoticeDraft.status == "pending")).all()
        [draft] = [d for d in pending if d.event == "review"]  # beside it: the resolution notice, unsent
        dm = session.exec(select(OutboxMessage).where(OutboxMessage.key == f"draft:{draft.id}:{ADMIN}")).one()
    assert (draft.event, draft.tenants) == ("review", ["acme", "globex"])
    assert "Hello Acme Corp team" in dm.payload["message"]["body"]  # each customer's exact text, for review
    with pytest.raises(PermissionDenied):
        s.commands.press("notice.send", str(draft.id), actor=RESP2)  # a responder may not send to customers
    assert review_mails() == {}
    s.commands.press("notice.send", str(draft.id), actor=ADMIN)
    mails = review_mails()
    with s.db.transaction() as session:
        sent = session.exec(select(AuditEvent).where(AuditEvent.action == "notice.sent")
                            .order_by(col(AuditEvent.seq).desc())).first()
    assert sent is not None and (sent.actor, sent.after["event"]) == (ADMIN, "review")  # who sent which text
    with s.db.transaction() as session:  # the account did not replace the resolution notice in review
        assert [d.event for d in session.exec(select(NoticeDraft).where(NoticeDraft.status == "pending"))] == [
            "resolution"]
    assert set(mails) == {"ops@acme.example", "it@globex.example"}
    acme, globex = mails["ops@acme.example"], mails["it@globex.example"]
    assert acme["subject"] == "What happened, and what we changed"
    assert "Hello Acme Corp team" in acme["body"] and "Globex" not in acme["body"]
    assert "Hello Globex team" in globex["body"] and "Acme" not in globex["body"]
    assert "We added disk alerts and doubled the space." in acme["body"]


def published_with(s: Core, clock: FakeClock, tenants: list[str], happened: str) -> None:
    """INC-1 on `tenants`, its customers told, resolved, and its review published saying `happened`."""
    s.workitems.declare(actor=RESP1, title="Exports fail", severity=Severity.SEV2, tenants=tenants)
    customers_told(s, clock)
    s.workitems.act(actor=RESP1, ref="INC-1", action="resolve")
    s.reviews.save(actor=RESP1, ref="INC-1", values={
        "contributing_factors": "x", "went_well": "y", "went_badly": "z",
        "public_what_happened": happened, "public_what_we_changed": "Quotas."})
    s.commands.press("review.submit", "INC-1", actor=RESP1)
    s.commands.press("review.publish", "INC-1", actor=RESP1)


def test_a_customer_account_naming_another_customer_is_refused_and_nothing_is_sent(
    drill: Core, clock: FakeClock
) -> None:
    s = drill
    published_with(s, clock, ["acme", "globex"], "Globex's bulk export filled the disk.")
    with pytest.raises(DomainError, match=r"names another customer \(Globex\)"):
        s.commands.press("review.share", "INC-1", actor=RESP1)
    with s.db.transaction() as session:
        assert session.exec(select(OutboxMessage).where(col(OutboxMessage.key).like("loop:%:review:%"))).all() == []
        assert session.exec(select(NoticeDraft).where(NoticeDraft.event == "review")).all() == []  # nor drafted


def test_a_customer_account_naming_its_own_customer_is_refused_too(drill: Core, clock: FakeClock) -> None:
    """The shared words go to every customer of the item and onto the status pages: they name nobody
    (each notice greets its customer by name already)."""
    s = drill
    published_with(s, clock, ["acme"], "Acme Corp's bulk export filled the disk.")
    with pytest.raises(DomainError, match="contains the name of the tenant acme"):
        s.commands.press("review.share", "INC-1", actor=RESP1)
    with s.db.transaction() as session:
        assert session.exec(select(NoticeDraft).where(NoticeDraft.event == "review")).all() == []


def test_an_item_resolved_within_the_hold_has_nobody_to_send_its_account_to(drill: Core) -> None:
    s = drill
    s.workitems.declare(actor=RESP1, title="Exports fail", severity=Severity.SEV2, tenants=["acme"])
    s.workitems.act(actor=RESP1, ref="INC-1", action="resolve")  # within the hold: no customer heard of it
    s.reviews.save(actor=RESP1, ref="INC-1", values={
        "contributing_factors": "x", "went_well": "y", "went_badly": "z",
        "public_what_happened": "A disk filled.", "public_what_we_changed": "Quotas."})
    s.commands.press("review.submit", "INC-1", actor=RESP1)
    s.commands.press("review.publish", "INC-1", actor=RESP1)
    with pytest.raises(DomainError, match="customers were never told of it"):
        s.commands.press("review.share", "INC-1", actor=RESP1)
