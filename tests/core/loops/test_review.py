"""Customers hear what a person decided: drafts in review, the hold, notices that match the state."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from opsloop.comms.models import NoticeDraft, PublicUpdate, is_public, public_updates
from opsloop.core import Core
from opsloop.errors import InvalidInput, PermissionDenied
from opsloop.intake.payloads import AlertmanagerWebhook, parse
from opsloop.loops.models import FeedbackLoop
from opsloop.models import AuditEvent, OutboxMessage
from opsloop.timers.models import Timer
from opsloop.types import Severity
from opsloop.workitems import find
from tests.support import FakeClock

COMMANDER, RESPONDER, ADMIN = "U0RESP1", "U0RESP2", "U0ADMIN"


def outbox(services: Core, transport: str | None = None, prefix: str = "") -> list[OutboxMessage]:
    with services.db.transaction() as s:
        query = select(OutboxMessage).where(col(OutboxMessage.key).startswith(prefix))
        if transport:
            query = query.where(OutboxMessage.transport == transport)
        return list(s.exec(query.order_by(col(OutboxMessage.id))))


def emails(services: Core) -> list[OutboxMessage]:
    return outbox(services, "email")


def drafts(services: Core) -> list[NoticeDraft]:
    with services.db.transaction() as s:
        return list(s.exec(select(NoticeDraft).order_by(col(NoticeDraft.id))))


def pending(services: Core) -> NoticeDraft:
    [draft] = [d for d in drafts(services) if d.status == "pending"]
    return draft


def press(services: Core, verb: str, draft: NoticeDraft, actor: str = COMMANDER) -> str:
    return services.commands.press(f"notice.{verb}", str(draft.id), actor=actor).text


def after_hold(services: Core, clock: FakeClock) -> None:
    clock.advance(minutes=5)
    services.sweeper.sweep()


def alert(tenant: str) -> AlertmanagerWebhook:
    labels = {"alertname": "CheckoutErrors", "service": "checkout-api", "tenant": tenant, "severity": "critical"}
    return parse(AlertmanagerWebhook, {
        "version": "4", "groupKey": '{}:{alertname="CheckoutErrors"}', "status": "firing",
        "receiver": "opsloop", "externalURL": "http://am.example", "groupLabels": {"alertname": "CheckoutErrors"},
        "commonLabels": labels, "commonAnnotations": {"summary": "Checkout returns 500"},
        "alerts": [{"status": "firing", "labels": labels, "annotations": {}, "startsAt": "2026-11-23T08:58:00Z",
                    "fingerprint": "f1"}]})


def test_the_alert_then_tenants_add_example_emails_nobody_until_send_then_the_state_of_then(
    services: Core, clock: FakeClock
) -> None:
    services.intake.ingest([("prometheus", alert("acme"))])
    assert emails(services) == []  # within seconds of the alert: nothing
    after_hold(services, clock)
    draft = pending(services)
    assert (draft.event, draft.state, draft.tenants) == ("start", "investigating", ["acme"])
    dms = outbox(services, prefix=f"draft:{draft.id}:")
    assert sorted(m.target for m in dms) == [ADMIN, COMMANDER]  # commander and admin: notice.approve
    shown = dms[0].payload["message"]
    assert "*To Acme Corp* (email)" in shown["body"] and "ops@acme.example" not in str(shown)
    assert "We are investigating a problem affecting your service" in shown["body"]
    assert [b["label"] for b in shown["buttons"]] == ["Send", "Edit", "Skip"]
    assert emails(services) == []
    clock.advance(minutes=20)
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="resolve")
    assert [d.status for d in drafts(services)] == ["superseded", "pending"]  # never sent stale
    services.commands.handle("/incident", "tenants INC-1 add initech", actor=COMMANDER)
    assert emails(services) == []
    resolution = pending(services)
    assert (resolution.event, resolution.tenants) == ("resolution", ["acme", "initech"])
    assert "Sent" in press(services, "send", resolution)
    sent = {m.target: m.payload for m in emails(services)}
    assert set(sent) == {"ops@acme.example", "admin@initech.example"}
    initech = sent["admin@initech.example"]
    assert initech["subject"] == "Resolved: the problem affecting your service"  # not "investigating"
    assert "Hello Initech team" in initech["body"] and "Acme" not in initech["body"]
    with services.db.transaction() as s:
        [update] = s.exec(select(PublicUpdate)).all()
        assert (update.approved_by, update.event, update.tenant_id) == (COMMANDER, "resolution", None)
        audited = s.exec(select(AuditEvent).where(AuditEvent.action == "notice.sent")).one()
        assert audited.actor == COMMANDER and audited.after is not None
        assert audited.after["text"].startswith("hmac-sha256:")  # the text, sealed like every free text


def test_only_people_allowed_notice_approve_or_the_comms_owner_send(services: Core, clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="Checkout down", severity=Severity.SEV1, tenants=["acme"])
    after_hold(services, clock)
    draft = pending(services)
    with pytest.raises(PermissionDenied, match="send notices to customers: that needs the comms owner of "
                                               "INC-1 or the role commander or admin"):
        press(services, "send", draft, actor=RESPONDER)
    assert emails(services) == [] and pending(services).id == draft.id
    services.workitems.assign(actor=COMMANDER, ref="INC-1", comms_owner="U0CSM1")
    press(services, "send", draft, actor="U0CSM1")  # the comms owner may, without the role
    [email] = emails(services)
    assert email.payload["subject"] == "We are investigating a problem affecting your service"
    with pytest.raises(InvalidInput, match="already sent by <@U0CSM1>"):
        press(services, "send", draft)
    assert len(emails(services)) == 1


def test_with_a_comms_owner_only_they_get_the_draft(services: Core, clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="Checkout down", severity=Severity.SEV1, tenants=["acme"])
    services.workitems.assign(actor=COMMANDER, ref="INC-1", comms_owner="U0CSM1")
    after_hold(services, clock)
    draft = pending(services)
    assert [m.target for m in outbox(services, prefix=f"draft:{draft.id}:")] == ["U0CSM1"]


def test_resolved_within_the_hold_no_customer_hears_but_internal_audiences_did_at_once(
    services: Core, clock: FakeClock
) -> None:
    services.workitems.declare(actor=COMMANDER, title="Blip", severity=Severity.SEV1, tenants=["acme"])
    assert [m.target for m in outbox(services, prefix="loop:") if m.target == "U0SALES1"] == ["U0SALES1"]
    clock.advance(minutes=3)
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="resolve")
    after_hold(services, clock)
    assert drafts(services) == [] and emails(services) == []
    with services.db.transaction() as s:
        assert s.exec(select(FeedbackLoop).where(FeedbackLoop.audience == "customers")).all() == []
        [timer] = s.exec(select(Timer).where(Timer.kind == "loops.hold")).all()
        assert timer.outcome == "skipped: resolved within the hold"
    status = services.commands.handle("/incident", "status INC-1", actor=COMMANDER).text
    assert "customers" not in status  # no customer loop left open to report


def test_mitigated_before_anyone_sent_the_start_supersedes_it_with_the_state_of_now(
    services: Core, clock: FakeClock
) -> None:
    services.workitems.declare(actor=COMMANDER, title="Checkout down", severity=Severity.SEV2, tenants=["acme"])
    after_hold(services, clock)
    first = pending(services)
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="acknowledge")
    assert pending(services).id == first.id  # still investigating, as far as customers can tell
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="mitigate")
    with pytest.raises(InvalidInput, match="already superseded"):
        press(services, "send", first)
    second = pending(services)
    assert (second.event, second.state) == ("start", "monitoring")
    press(services, "send", second)
    [email] = emails(services)
    assert email.payload["subject"] == "A fix is in place for a problem affecting your service"
    assert "monitoring the results" in email.payload["body"]


def test_customers_already_told_hear_of_mitigation_in_one_update(services: Core, clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="Checkout down", severity=Severity.SEV1,
                               tenants=["acme", "globex"])
    after_hold(services, clock)
    press(services, "send", pending(services))
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="mitigate")
    update = pending(services)
    assert (update.event, update.tenants) == ("update", ["acme", "globex"])
    press(services, "send", update)
    subjects = [m.payload["subject"] for m in emails(services)]
    assert subjects.count("Update on the problem affecting your service") == 2 and len(subjects) == 4


def test_a_public_update_is_drafted_checked_edited_and_sent(services: Core, clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="Exports slow", severity=Severity.SEV2,
                               tenants=["acme", "globex"])
    with pytest.raises(InvalidInput, match=r"contains the name of the tenant globex.*must name no customer"):
        services.commands.handle("/incident", 'update INC-1 --public "Globex exports are queued"', actor=COMMANDER)
    with pytest.raises(InvalidInput, match="contact of the tenant acme"):
        services.commands.handle("/incident", 'update INC-1 --public "write to OPS@acme.example"', actor=COMMANDER)
    assert drafts(services) == []
    reply = services.commands.handle("/incident", 'update INC-1 --public "Exports are queued; none are lost."',
                                     actor=COMMANDER)
    assert "drafted for review by <@U0RESP1>, <@U0ADMIN>" in reply.text
    draft = pending(services)
    assert (draft.event, draft.text, draft.tenants) == ("update", "Exports are queued; none are lost.",
                                                         ["acme", "globex"])
    form = services.commands.press("notice.edit", str(draft.id), actor=COMMANDER).form
    assert form is not None and form.id == "notice.edit" and form.fields[0].initial == draft.text
    with pytest.raises(InvalidInput, match="must name no customer"):
        services.commands.submit("notice.edit", form.context, {"text": "Acme Corp first"}, actor=COMMANDER)
    services.commands.submit("notice.edit", form.context, {"text": "Exports are queued. None are lost."},
                             actor=COMMANDER)
    edited = outbox(services, prefix=f"draft:{draft.id}:{COMMANDER}")[-1]
    assert edited.update_key == f"draft:{draft.id}:{COMMANDER}" and "None are lost." in str(edited.payload)
    assert emails(services) == []  # the person writing it did not send it: the hold is no matter now
    press(services, "send", draft)
    bodies = {m.target: m.payload["body"] for m in emails(services)}
    assert all("Exports are queued. None are lost." in body for body in bodies.values())
    assert "Globex" not in bodies["ops@acme.example"]
    with services.db.transaction() as s:
        item = find(s, "INC-1")
        assert [u.text for u in public_updates(s, item.id or 0)] == ["Exports are queued. None are lost."]
    after_hold(services, clock)  # the hold's start notice: these tenants were told already
    assert [d.status for d in drafts(services)] == ["sent"]


def test_the_card_opens_the_public_update_form(services: Core) -> None:
    services.workitems.declare(actor=COMMANDER, title="Exports slow", severity=Severity.SEV2, tenants=["acme"])
    button = next(b for b in services.cards.of("INC-1").buttons if b.action == "notice.compose")
    form = services.commands.press(button.action, button.value, actor=COMMANDER).form
    assert form is not None and form.id == "notice.public"
    reply = services.commands.submit("notice.public", form.context, {"text": "We found the cause."}, actor=COMMANDER)
    assert "drafted for review" in reply.text and pending(services).text == "We found the cause."


def test_cadence_updates_are_drafts_carrying_the_last_public_update(services: Core, clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="Slow API", severity=Severity.SEV2, tenants=["acme"])
    after_hold(services, clock)
    press(services, "send", pending(services))
    services.commands.handle("/incident", 'update INC-1 --public "The slow queries come from one index."',
                             actor=COMMANDER)
    press(services, "send", pending(services))
    sent = len(emails(services))
    clock.advance(minutes=55)
    services.loops.sweep()
    cadence = pending(services)
    assert cadence.event == "cadence"
    assert cadence.text.endswith("Our last update: The slow queries come from one index.")
    assert len(emails(services)) == sent  # in review, like every customer notice


def test_skipping_the_resolution_closes_the_customer_loops(services: Core, clock: FakeClock) -> None:
    services.workitems.declare(actor=COMMANDER, title="Checkout down", severity=Severity.SEV1, tenants=["acme"])
    after_hold(services, clock)
    press(services, "send", pending(services))
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="resolve")
    assert "Skipped" in press(services, "skip", pending(services))
    with services.db.transaction() as s:
        item = find(s, "INC-1")
        assert [loop.audience for loop in services.loops.open_loops(s, item)] != []  # internal: not delivered
        assert "customers" not in [loop.audience for loop in services.loops.open_loops(s, item)]
        skipped = s.exec(select(AuditEvent).where(AuditEvent.action == "notice.skipped")).one()
        assert skipped.actor == COMMANDER


def test_marking_an_item_public_is_for_the_comms_owner_and_notice_approvers(services: Core) -> None:
    services.workitems.declare(actor=COMMANDER, title="Checkout down", severity=Severity.SEV1, tenants=["acme"])
    with pytest.raises(PermissionDenied, match="mark incidents public"):
        services.commands.handle("/incident", "public INC-1 on", actor=RESPONDER)
    reply = services.commands.handle("/incident", "public INC-1 on", actor=COMMANDER)
    assert reply.text.startswith("INC-1 is now shown on the public status page")
    with pytest.raises(InvalidInput, match="already public"):
        services.commands.handle("/incident", "public INC-1 on", actor=ADMIN)
    with services.db.transaction() as s:
        assert is_public(s, find(s, "INC-1").id or 0)
    services.commands.handle("/incident", "public INC-1 off", actor=ADMIN)
    with services.db.transaction() as s:
        assert not is_public(s, find(s, "INC-1").id or 0)
        actions = [e.action for e in s.exec(select(AuditEvent).where(AuditEvent.subject == "INC-1"))]
    assert actions.count("status.public") == 2
