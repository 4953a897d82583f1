"""/maintenance through the real Bolt app, with really signed requests, against the mock Slack."""

from __future__ import annotations

import pytest

from bot.bootstrap import Services
from tests.bot.live_server import LiveServer
from tests.bot.mock_slack import MockSlack
from tests.bot.slack_requests import command_body, press_body
from tests.bot.test_slack_http import answered, cards, responses, wait_for

COMMANDER, RESPONDER = "U0RESP1", "U0RESP2"
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # storage: tests/core/maintenance


def test_schedule_then_end_by_the_cards_button(server: LiveServer, mock_slack: MockSlack,
                                               slack_services: Services) -> None:
    answer = server.post(command_body("/maintenance", 'schedule "DB upgrade" service=db from now until +2h',
                                      user=COMMANDER, respond_to=mock_slack.url))
    assert answered(answer, mock_slack).startswith("Scheduled MNT-1: DB upgrade — from ")
    server.settle(lambda: len(cards(mock_slack)) == 1)
    [card] = cards(mock_slack)
    fields = [f["text"] for b in card.params["blocks"] if "fields" in b for f in b["fields"]]
    assert "*Covers*\nservice=\"db\"" in fields
    buttons = {e["text"]["text"]: (e["action_id"], e["value"])
               for b in card.params["blocks"] if b["type"] == "actions" for e in b["elements"]}
    assert buttons == {"End now": ("maintenance.end", "MNT-1")}

    server.post(press_body(*buttons["End now"], user=RESPONDER, respond_to=mock_slack.url))
    wait_for(lambda: any("you may not end maintenance windows" in r for r in responses(mock_slack)))
    server.post(press_body(*buttons["End now"], user=COMMANDER, respond_to=mock_slack.url))
    wait_for(lambda: "MNT-1 ended — now ended" in responses(mock_slack))
    assert slack_services.workitems.get("MNT-1").item.state == "ended"
