"""The lifecycle through the service: every change stored, audited and announced together."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from opsloop import audit
from opsloop.compliance.models import AuditPersonal
from opsloop.compliance.personal import is_commitment
from opsloop.core import Core
from opsloop.errors import IllegalTransition, InvalidInput, NotFound, PermissionDenied
from opsloop.lifecycle import TRANSITIONS, transition
from opsloop.models import AuditEvent, OutboxMessage, TimelineEvent, WorkItem
from opsloop.types import Kind, Severity, State
from tests.support import FakeClock

RESPONDER, COMMANDER, APPROVER, STRANGER = "U0RESP2", "U0RESP1", "U0SRE1", "U0NOBODY"

ALL_PAIRS = [
    (kind, state, action)
    for kind in Kind
    for state in State
    for action in TRANSITIONS[kind]
]


@pytest.mark.parametrize(("kind", "state", "action"), ALL_PAIRS)
def test_every_action_from_every_state_is_allowed_exactly_per_the_table(
    kind: Kind, state: State, action: str
) -> None:
    step = TRANSITIONS[kind][action]
    if state in step.sources:
        assert transition(kind, state, action, "X-1").target == step.target
    else:
        with pytest.raises(IllegalTransition, match=f"X-1 is {state.value}"):
            transition(kind, state, action, "X-1")


def test_an_incident_walks_the_whole_lifecycle_with_every_timestamp(services: Core,
                                                                     clock: FakeClock) -> None:
    items = services.workitems
    inc = items.declare(actor=COMMANDER, title="Checkout API returns 500", severity=Severity.SEV1,
                        tenants=["acme"])
    assert (inc.ref, inc.state, inc.owner) == ("INC-1", "triggered", COMMANDER)
    for action, state, stamp in [("acknowledge", "acknowledged", "acknowledged_at"),
                                 ("mitigate", "mitigated", "mitigated_at"),
                                 ("resolve", "resolved", "resolved_at"),
                                 ("close", "closed", "closed_at")]:
        moment = clock.advance(minutes=3)
        inc = items.act(actor=COMMANDER, ref="inc-1", action=action,  # the runbook's steps are left open
                        forced=action == "close", note="steps tracked elsewhere" if action == "close" else None)
        assert inc.state == state
        assert getattr(inc, stamp) == moment
    view = items.get("INC-1")
    assert view.tenants == ["acme"]
    # resolving a sev1 drafts its review (reviews.required_for)
    assert [e.action for e in view.timeline] == ["created", "acknowledge", "mitigate", "resolve", "review.drafted",
                                                 "close"]


def test_human_ids_count_per_kind(services: Core) -> None:
    items = services.workitems
    assert items.declare(actor=COMMANDER, title="a").ref == "INC-1"
    assert items.open_escalation(actor=STRANGER, title="b", tenants=["acme"]).ref == "ESC-1"
    assert items.request_exception(actor=STRANGER, title="c").ref == "EXC-1"
    assert items.declare(actor=COMMANDER, title="d").ref == "INC-2"


def test_an_illegal_transition_changes_nothing(services: Core) -> None:
    items = services.workitems
    items.declare(actor=COMMANDER, title="x")
    with services.db.transaction() as s:
        before = (s.exec(select(AuditEvent)).all().__len__(), s.exec(select(OutboxMessage)).all().__len__())
    with pytest.raises(IllegalTransition, match="INC-1 is triggered; it cannot be closed"):
        items.act(actor=COMMANDER, ref="INC-1", action="close")
    with services.db.transaction() as s:
        after = (s.exec(select(AuditEvent)).all().__len__(), s.exec(select(OutboxMessage)).all().__len__())
        assert s.exec(select(WorkItem)).one().state == "triggered"
    assert before == after


def test_unknown_and_malformed_ids_are_clear_errors(services: Core) -> None:
    with pytest.raises(NotFound, match="no work item INC-9"):
        services.workitems.act(actor=COMMANDER, ref="INC-9", action="acknowledge")
    with pytest.raises(InvalidInput, match="not a work item id"):
        services.workitems.act(actor=COMMANDER, ref="BUG-1", action="acknowledge")


def test_unknown_tenant_is_refused_and_nothing_is_stored(services: Core) -> None:
    with pytest.raises(NotFound, match="unknown tenant nope"):
        services.workitems.declare(actor=COMMANDER, title="x", tenants=["acme", "nope"])
    with services.db.transaction() as s:
        assert s.exec(select(WorkItem)).all() == []


def test_a_refusal_is_an_error_and_an_audit_event(services: Core) -> None:
    with pytest.raises(PermissionDenied, match="needs the role responder, commander or admin"):
        services.workitems.declare(actor=STRANGER, title="not mine to declare")
    inc = services.workitems.declare(actor=RESPONDER, title="ok")
    with pytest.raises(PermissionDenied, match="commander or admin"):
        services.workitems.act(actor=RESPONDER, ref=inc.ref, action="close")  # closing needs a commander
    with services.db.transaction() as s:
        denied = s.exec(select(AuditEvent).where(AuditEvent.action == "permission.denied")
                        .order_by(col(AuditEvent.seq))).all()
        assert [(e.actor, e.subject, (e.after or {})["attempted"]) for e in denied] == [
            (STRANGER, "incident", "incident.declare"), (RESPONDER, "INC-1", "incident.close")]
        assert s.exec(select(WorkItem)).one().state == "triggered"
        assert audit.verify(s).ok


def test_exceptions_are_decided_by_approvers_and_lapse_after_their_window(
    services: Core, clock: FakeClock
) -> None:
    from datetime import timedelta
    items = services.workitems
    exc = items.request_exception(actor=STRANGER, title="Skip the freeze", expires_in=timedelta(hours=4))
    with pytest.raises(PermissionDenied):
        items.act(actor=STRANGER, ref=exc.ref, action="approve")
    approved = items.act(actor=APPROVER, ref=exc.ref, action="approve")
    assert approved.state == "approved"
    assert approved.expires_at == clock.now() + timedelta(hours=4)
    with pytest.raises(IllegalTransition):
        items.act(actor=APPROVER, ref=exc.ref, action="reject")


def test_each_change_writes_item_timeline_audit_and_outbox_in_one_transaction(
    services: Core,
) -> None:
    services.workitems.declare(actor=COMMANDER, title="x", tenants=["acme"])
    services.workitems.act(actor=COMMANDER, ref="INC-1", action="acknowledge", note="on it")
    with services.db.transaction() as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.subject == "INC-1",
                                                 col(AuditEvent.action).startswith("incident."))
                        .order_by(col(AuditEvent.seq))).all()
        assert [e.action for e in events] == ["incident.created", "incident.acknowledge"]
        assert events[1].before == {"state": "triggered", "acknowledged_at": None, "note": None}
        assert events[1].after["state"] == "acknowledged"
        assert is_commitment(events[1].after["note"])  # free text is sealed apart (erasable)
        sealed = s.get(AuditPersonal, (events[1].seq, "/after/note"))
        assert sealed is not None and sealed.value == '"on it"'
        lines = s.exec(select(TimelineEvent.text).order_by(col(TimelineEvent.id))).all()
        assert lines[-1] == "<@U0RESP1> acknowledged INC-1: on it"
        out = s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        card = next(m for m in out if m.key == "card:INC-1")
        assert (card.update_key, card.thread_key) == (None, None)
        later = [m for m in out if m.id > card.id]
        assert {m.update_key for m in later} >= {"card:INC-1"}
        assert {m.thread_key for m in later} >= {"card:INC-1"}


def test_user_text_cannot_ping_the_channel(services: Core) -> None:
    services.workitems.declare(actor=COMMANDER, title="<!channel> db down & more")
    with services.db.transaction() as s:
        card = s.exec(select(OutboxMessage).where(OutboxMessage.key == "card:INC-1")).one()
    assert "<!channel>" not in card.payload["message"]["text"]
    assert "&lt;!channel&gt; db down &amp; more" in card.payload["message"]["text"]
