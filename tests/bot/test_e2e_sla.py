"""Issue 6, end to end: `opsloop serve` with a 5-second response target warns, then breaches, in Slack.

Everything real but Slack and time: the HTTP app on uvicorn, the Bolt app behind really signed
requests, the outbox worker, and the scheduler sweeping every 0.1 s of real time while the test
moves the fake clock (one clock for the sweeper, the SLA arithmetic and Slack's pacing).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.bootstrap import Services
from bot.settings import Settings
from tests.bot.e2e import (
    buttons,
    fields,
    posts,
    sent_on,
    serve,
    slack_policy,
    sweeps_pass,
    texts,
    wait_for,
    write_policy,
)
from tests.bot.live_server import LiveServer
from tests.bot.mock_slack import Call, MockSlack
from tests.bot.slack_requests import command_body, press_body
from tests.support import FakeClock

COMMANDER, RESPONDER = "U0RESP1", "U0RESP2"


@pytest.fixture
def sla_serve(tmp_path: Path, slack_settings: Settings, clock: FakeClock
              ) -> Iterator[tuple[Services, LiveServer]]:
    policy = slack_policy()
    policy["sla"] = {"policies": [{
        "match": {"kind": "incident", "severity": "sev1"}, "calendar": "24x7",
        "targets": {"response": "5s"}, "warn_at": [0.5],
        "escalation": "page-sre", "escalate_on": "breach",  # a missed target pages the on-call
    }], "declared_meets_response": False}  # the declarer is not taken as responding: an ack is awaited
    policy["escalation"] = {"page-sre": {"levels": [{"notify": ["oncall:sre"], "wait": "1m"}]}}
    settings = slack_settings.model_copy(update={"config": write_policy(tmp_path, policy),
                                                 "sweep_interval": 0.1})
    with serve(settings, clock) as running:
        yield running


def declare(running: tuple[Services, LiveServer], mock: MockSlack, clock: FakeClock, ref: str, title: str
            ) -> Call:
    """Declare a sev1 by slash command; returns its card, posted in the incident's own channel once
    Slack made it (the card waits out the channel's 1 s pace behind the channel's creation)."""
    services, server = running
    before = {c.params["channel"] for c in cards(mock)}
    answer = server.post(command_body("/incident", f'declare "{title}" sev1', user=COMMANDER,
                                      respond_to=mock.url))
    assert answer.status_code == 200
    wait_for(lambda: sent_on(services, f"chat:pending:{ref}") == 1, what="the channel's creation")
    clock.advance(seconds=1)
    server.dispatcher.wake()
    wait_for(lambda: len(cards(mock)) == len(before) + 1, what=f"the card of {title!r}")
    [card] = [c for c in cards(mock) if c.params["channel"] not in before]
    return card


def cards(mock: MockSlack) -> list[Call]:
    """Top-level messages in the incident channels Slack created for us (`C0NEW...`)."""
    return [c for c in posts(mock) if c.params["channel"].startswith("C0NEW") and "thread_ts" not in c.params]


def thread(mock: MockSlack, card: Call) -> list[Call]:
    return [c for c in posts(mock, card.params["channel"]) if c.params.get("thread_ts") == card_ts(card)]


def card_ts(card: Call) -> str:
    """The ts Slack (the mock) answered for the card's chat.postMessage."""
    return str(card.answer["ts"])


def card_updates(mock: MockSlack, card: Call) -> list[Call]:
    ts = card_ts(card)
    return [c for c in mock.ok_calls("chat.update") if (c.params["channel"], c.params["ts"]) ==
            (card.params["channel"], ts)]


def test_a_5s_response_target_warns_then_breaches_in_slack_and_an_acknowledged_one_does_not(
    sla_serve: tuple[Services, LiveServer], mock_slack: MockSlack, clock: FakeClock
) -> None:
    services, server = sla_serve
    t0 = clock.now()
    late = declare(sla_serve, mock_slack, clock, "INC-1", "Payments down")  # INC-1, declared at t0: nobody answers
    assert late.params["text"] == "🔴 INC-1 Payments down" and fields(late)["Response"] == "5s left"  # as rendered when declared
    quick = declare(sla_serve, mock_slack, clock, "INC-2", "Search down")   # INC-2, declared at t0+1
    assert quick.params["text"] == "🔴 INC-2 Search down" and fields(quick)["Response"] == "5s left"
    assert clock.now() - t0 == timedelta(seconds=2)

    ack = buttons(quick)["Acknowledge"]  # INC-2 acknowledged 1 s after it was declared
    assert server.post(press_body(*ack, user=RESPONDER, respond_to=mock_slack.url,
                                  channel=quick.params["channel"], message_ts=card_ts(quick))).status_code == 200
    wait_for(lambda: any(fields(u).get("Response") == "met in 1s" for u in card_updates(mock_slack, quick)),
             what="INC-2's card to show its response target met")

    clock.advance(seconds=1)  # t0+3s: past INC-1's warning at 50% (2.5 s), before its target (5 s)
    wait_for(lambda: len(thread(mock_slack, late)) == 1, what="the warning in INC-1's thread")
    [warning] = thread(mock_slack, late)
    assert warning.params["text"] == "⏳ INC-1: 2s left for the response target (5s; 50% used)"
    assert warning.params["reply_broadcast"] is True  # also shown in the channel
    wait_for(lambda: any(fields(u).get("Response") == "2s left" for u in card_updates(mock_slack, late)),
             what="INC-1's card to count down")  # (before the breach's edit could supersede it)
    sweeps_pass(services)
    assert len(thread(mock_slack, late)) == 1  # no breach before the target

    clock.advance(seconds=3)  # t0+6s: INC-1's target has passed
    wait_for(lambda: len(thread(mock_slack, late)) == 2, what="the breach in INC-1's thread")
    breach = thread(mock_slack, late)[1]
    assert breach.params["text"] == "🚨 INC-1 missed its response target (5s)"
    assert breach.params["reply_broadcast"] is True
    wait_for(lambda: any(fields(u).get("Response", "").startswith("breached")
                         for u in card_updates(mock_slack, late)), what="INC-1's card to show the breach")
    shown = [fields(u).get("Response", "") for u in card_updates(mock_slack, late)]
    assert shown.index("2s left") < next(i for i, s in enumerate(shown) if s.startswith("breached"))
    calls = mock_slack.all_calls("chat.postMessage")
    assert calls.index(late) < calls.index(warning) < calls.index(breach)

    # the missed target pages the on-call person: a DM with an Acknowledge button
    wait_for(lambda: len(dms(mock_slack)) == 1, what="the page")
    [page] = dms(mock_slack)
    paged = page.params["channel"]
    assert paged in ("U0RESP1", "U0RESP2")  # the sre rotation
    assert page.params["text"] == "📟 You are paged: INC-1 Payments down (sev1)"
    assert buttons(page)["Acknowledge"] == ("workitem.acknowledge", "INC-1")

    # INC-2, acknowledged in time: no warning, no breach, no page, however long we wait
    clock.advance(seconds=30)
    sweeps_pass(services, 3)
    wait_for(lambda: len(thread(mock_slack, late)) == 3, what="the page in INC-1's thread")
    assert texts(thread(mock_slack, late)) == [warning.params["text"], breach.params["text"],
                                               f"📟 Paged <@{paged}> for INC-1 (level 1 of 1, round 1 of 1)"]
    assert texts(thread(mock_slack, quick)) == [f"<@{RESPONDER}> acknowledged INC-2"]
    assert len(dms(mock_slack)) == 1


def dms(mock: MockSlack) -> list[Call]:
    return [c for c in posts(mock) if c.params["channel"].startswith("U")]
