"""The Slack outbox sender against the mock Web API: order, 429s, outages, failures, channels."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from bot.bootstrap import Services
from bot.slack.sender import SlackSender, web_client
from bot.slack.wiring import wire_slack
from opsloop import outbox
from opsloop.models import AuditEvent, OutboxMessage, WorkItem
from opsloop.outbox import Dispatcher
from opsloop.types import Severity
from tests.bot.mock_slack import Answer, MockSlack
from tests.support import FakeClock

COMMANDER, RESPONDER = "U0RESP1", "U0RESP2"


def pump(dispatcher: Dispatcher, clock: FakeClock, rounds: int = 30, step: float = 1.0) -> None:
    """Let fake time pass and deliver what falls due (the worker thread's loop, by hand)."""
    for _ in range(rounds):
        dispatcher.run_once()
        clock.advance(seconds=step)


def texts(mock: MockSlack, method: str = "chat.postMessage") -> list[str]:
    return [str(c.params["text"]) for c in mock.ok_calls(method)]


def fields_of(blocks: list[dict[str, Any]]) -> list[str]:
    return [f["text"] for b in blocks if "fields" in b for f in b["fields"]]


def rows(services: Services) -> list[OutboxMessage]:
    with services.db.transaction() as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))


def test_a_card_is_posted_updated_in_place_and_threaded(
    slack_services: Services, mock_slack: MockSlack, clock: FakeClock
) -> None:
    dispatcher = wire_slack(slack_services)
    slack_services.workitems.declare(actor=COMMANDER, title="Checkout <!channel> 500s", tenants=["acme"])
    pump(dispatcher, clock, rounds=2)
    [post] = mock_slack.ok_calls("chat.postMessage")
    assert post.params["channel"] == "C0OPS"
    assert post.headers["Authorization"] == "Bearer xoxb-test-token"
    assert "&lt;!channel&gt;" in post.params["text"]  # never a ping
    buttons = [e for b in post.params["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("workitem.acknowledge", "INC-1"), ("workitem.mitigate", "INC-1"), ("workitem.resolve", "INC-1"),
        ("notice.compose", "INC-1")]  # review-before-send: an incident's card offers a public update
    card = rows(slack_services)[0]
    assert (card.external_id, card.external_target) == (f"1700000000.{1:06d}", "C0OPS")

    slack_services.workitems.act(actor=RESPONDER, ref="INC-1", action="acknowledge")
    pump(dispatcher, clock, rounds=3)
    [update] = mock_slack.ok_calls("chat.update")
    assert (update.params["channel"], update.params["ts"]) == ("C0OPS", card.external_id)
    assert "*State*\nacknowledged" in fields_of(update.params["blocks"])
    thread = mock_slack.ok_calls("chat.postMessage")[1]
    assert thread.params["thread_ts"] == card.external_id
    assert thread.params["text"] == f"<@{RESPONDER}> acknowledged INC-1"

    # issue 16 part 3: resolved, the same message keeps only Reopen (and the public update that says so)
    slack_services.workitems.act(actor=RESPONDER, ref="INC-1", action="resolve")
    pump(dispatcher, clock, rounds=3)
    resolved = mock_slack.ok_calls("chat.update")[-1]
    assert (resolved.params["channel"], resolved.params["ts"]) == ("C0OPS", card.external_id)
    assert [e["action_id"] for b in resolved.params["blocks"] if b["type"] == "actions" for e in b["elements"]] == [
        "workitem.reopen", "notice.compose"]


def test_two_429s_are_waited_out_and_the_message_goes_once(
    slack_services: Services, mock_slack: MockSlack, clock: FakeClock
) -> None:
    dispatcher = wire_slack(slack_services)
    mock_slack.script("chat.postMessage", Answer(429, {"ok": False, "error": "ratelimited"},
                                                 {"Retry-After": "7"}),
                      Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}))
    slack_services.workitems.declare(actor=COMMANDER, title="Disk full")
    start = clock.now()
    dispatcher.run_once()
    assert rows(slack_services)[0].next_attempt_at == start + timedelta(seconds=7)
    clock.advance(seconds=6)
    dispatcher.run_once()  # not due yet: Slack said 7 s
    assert len(mock_slack.all_calls("chat.postMessage")) == 1
    clock.advance(seconds=1)
    dispatcher.run_once()
    clock.advance(seconds=7)
    dispatcher.run_once()
    assert [c.status for c in mock_slack.all_calls("chat.postMessage")] == [429, 429, 200]
    assert dispatcher.stats.rate_limited == 2
    assert rows(slack_services)[0].status == "sent"


def test_while_slack_is_down_nothing_is_lost_and_everything_arrives_in_order_once(
    slack_services: Services, mock_slack: MockSlack, clock: FakeClock
) -> None:
    dispatcher = wire_slack(slack_services)
    items = slack_services.workitems
    mock_slack.down = True
    items.declare(actor=COMMANDER, title="first")
    items.declare(actor=COMMANDER, title="second")
    items.act(actor=RESPONDER, ref="INC-1", action="acknowledge")
    items.act(actor=RESPONDER, ref="INC-1", action="mitigate")
    mock_slack.drop = True  # then the network itself fails for a while
    mock_slack.down = False
    pump(dispatcher, clock, rounds=10, step=5)
    mock_slack.drop = False
    mock_slack.down = True
    pump(dispatcher, clock, rounds=10, step=5)
    assert mock_slack.ok_calls("chat.postMessage") == []
    with slack_services.db.transaction() as session:
        assert outbox.depth(session) == 5  # 2 cards, 1 (superseding) update, 2 thread lines
    mock_slack.down = False
    pump(dispatcher, clock, rounds=40, step=30)
    assert texts(mock_slack) == ["🟡 INC-1 first", "🟡 INC-2 second", f"<@{RESPONDER}> acknowledged INC-1",
                                 f"<@{RESPONDER}> mitigated INC-1"]
    [update] = mock_slack.ok_calls("chat.update")
    assert "*State*\nmitigated" in fields_of(update.params["blocks"])
    with slack_services.db.transaction() as session:
        assert outbox.depth(session) == 0


def test_a_refusal_that_will_never_succeed_fails_once_and_does_not_block_the_channel(
    slack_services: Services, mock_slack: MockSlack, clock: FakeClock
) -> None:
    dispatcher = wire_slack(slack_services)
    mock_slack.script("chat.postMessage", Answer(200, {"ok": False, "error": "invalid_blocks"}))
    slack_services.workitems.declare(actor=COMMANDER, title="one")
    slack_services.workitems.declare(actor=COMMANDER, title="two")
    pump(dispatcher, clock, rounds=3)
    first, second = rows(slack_services)
    assert (first.status, first.attempts) == ("failed", 1)
    assert first.last_error == "chat.postMessage: invalid_blocks"
    assert second.status == "sent"
    assert dispatcher.stats.dead == 1


def test_messages_to_one_channel_are_paced_one_per_second(
    slack_services: Services, mock_slack: MockSlack, clock: FakeClock
) -> None:
    dispatcher = wire_slack(slack_services)
    for n in range(3):
        slack_services.workitems.declare(actor=COMMANDER, title=f"n{n}")
    for _ in range(3):
        dispatcher.run_once()
    assert len(mock_slack.ok_calls("chat.postMessage")) == 1
    clock.advance(seconds=1)
    dispatcher.run_once()
    dispatcher.run_once()
    assert texts(mock_slack) == ["🟡 INC-1 n0", "🟡 INC-2 n1"]


def test_a_user_id_target_is_a_direct_message_whose_channel_is_kept(
    slack_services: Services, mock_slack: MockSlack, clock: FakeClock
) -> None:
    sender = SlackSender(web_client("xoxb-test-token", mock_slack.api_url))
    dispatcher = Dispatcher(slack_services.db, {"dm": sender}, clock)
    with slack_services.db.transaction() as session:
        outbox.enqueue(session, transport="dm", target="U0CSM1", now=clock.now(),
                       payload={"message": {"text": "Acme is at risk"}})
    dispatcher.run_once()
    assert mock_slack.ok_calls("chat.postMessage")[0].params["channel"] == "U0CSM1"
    assert rows(slack_services)[0].external_target == "D0CSM1"


def test_a_sev1_gets_its_own_channel_before_its_card(
    slack_services: Services, mock_slack: MockSlack, clock: FakeClock
) -> None:
    dispatcher = wire_slack(slack_services)
    mock_slack.script("conversations.create", Answer(200, {"ok": False, "error": "name_taken"}))
    item = slack_services.workitems.declare(actor=COMMANDER, title="EU DB primary down!",
                                            severity=Severity.SEV1)
    assert item.channel == "pending:INC-1"
    pump(dispatcher, clock, rounds=4)
    creates = mock_slack.all_calls("conversations.create")
    assert [c.params["name"] for c in creates] == ["inc-1-eu-db-primary-down", "inc-1-eu-db-primary-down-2"]
    [invite] = mock_slack.ok_calls("conversations.invite")
    assert invite.params["channel"] == "C0NEW1"
    assert invite.params["users"].split(",") == ["U0RESP1", "U0RESP2"]
    posts = mock_slack.ok_calls("chat.postMessage")
    order = [c.method for c in mock_slack.calls if c.status == 200 and c.method != "auth.test"]
    assert order.index("conversations.invite") < order.index("chat.postMessage")
    assert {(c.params["channel"], c.params["text"]) for c in posts} == {
        ("C0NEW1", "🔴 INC-1 EU DB primary down!"), ("C0OPS", "INC-1 has its own channel: <#C0NEW1>")}
    assert slack_services.workitems.get("INC-1").item.channel == "C0NEW1"
    slack_services.workitems.act(actor=RESPONDER, ref="INC-1", action="acknowledge")
    pump(dispatcher, clock, rounds=3)
    assert mock_slack.ok_calls("chat.update")[0].params["channel"] == "C0NEW1"
    with slack_services.db.transaction() as session:
        moved = session.exec(select(AuditEvent).where(AuditEvent.action == "incident.channel")).one()
    assert moved.after == {"channel": "C0NEW1"}


def test_when_no_channel_can_be_made_the_card_goes_to_ops(
    slack_services: Services, mock_slack: MockSlack, clock: FakeClock
) -> None:
    dispatcher = wire_slack(slack_services)
    mock_slack.script("conversations.create", Answer(200, {"ok": False, "error": "restricted_action"}))
    slack_services.workitems.declare(actor=COMMANDER, title="EU DB down", severity=Severity.SEV1)
    pump(dispatcher, clock, rounds=3)
    [post] = mock_slack.ok_calls("chat.postMessage")
    assert (post.params["channel"], post.params["text"]) == ("C0OPS", "🔴 INC-1 EU DB down")
    with slack_services.db.transaction() as session:
        item = session.exec(select(WorkItem)).one()
    assert item.channel == "C0OPS"
    assert "restricted_action" in slack_services.workitems.get("INC-1").timeline[-1].text


def test_a_retried_channel_operation_does_not_create_a_second_channel(
    slack_services: Services, mock_slack: MockSlack, clock: FakeClock
) -> None:
    dispatcher = wire_slack(slack_services)
    mock_slack.script("conversations.invite", Answer(503))
    slack_services.workitems.declare(actor=COMMANDER, title="EU DB down", severity=Severity.SEV1)
    pump(dispatcher, clock, rounds=6, step=5)
    assert len(mock_slack.all_calls("conversations.create")) == 1
    assert [c.status for c in mock_slack.all_calls("conversations.invite")] == [503, 200]
    cards = [c for c in mock_slack.ok_calls("chat.postMessage") if c.params["text"].endswith("EU DB down")]
    assert [c.params["channel"] for c in cards] == ["C0NEW1"]


def test_role_members_may_be_slack_user_groups(
    slack_services: Services, mock_slack: MockSlack
) -> None:
    wire_slack(slack_services)
    authz = slack_services.authz
    assert not authz.has_role("U0GROUPIE", "responder")
    object.__setattr__(slack_services.policy, "roles", {**slack_services.policy.roles,
                                                        "responder": ["S0ONCALL"]})
    assert authz.has_role("U0GROUPIE", "responder")
    assert authz.has_role("U0GROUPIE", "responder")
    assert len(mock_slack.all_calls("usergroups.users.list")) == 1  # cached
