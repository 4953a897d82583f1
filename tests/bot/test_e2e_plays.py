"""Issue 23, end to end through `opsloop serve`: a prompt's Take it opens a play, its checklist DM is
worked with Done, and the Close form records the outcome — all really signed, against the mock Slack."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from bot.bootstrap import Services
from opsloop.health.models import HealthPlay
from tests.bot.e2e import buttons, posts, pump, responses, wait_for
from tests.bot.live_server import LiveServer
from tests.bot.mock_slack import MockSlack
from tests.bot.slack_requests import press_body, submit_body
from tests.bot.test_e2e_health import CSM, bad_news, health_serve, prompts_to, signal
from tests.support import FakeClock

__all__ = ["health_serve"]  # the fixture, shared with the prompt's end-to-end test

pytestmark = pytest.mark.slow


def test_take_it_opens_a_play_worked_in_the_dm_and_closed_with_an_outcome(
    health_serve: tuple[Services, LiveServer], mock_slack: MockSlack, clock: FakeClock
) -> None:
    services, server = health_serve
    assert signal(server, bad_news(clock)).json()["prompts"] == 1
    wait_for(lambda: len(prompts_to(mock_slack, CSM)) == 1, what="the prompt")
    [dm] = prompts_to(mock_slack, CSM)
    take = buttons(dm)["Take it"]
    server.post(press_body(*take, user=CSM, respond_to=mock_slack.url, channel=dm.answer["channel"],
                           message_ts=dm.answer["ts"]))
    wait_for(lambda: any(r.startswith("Opened PLAY-1 for Acme Corp") for r in responses(mock_slack)),
             what="the confirmation")
    pump(services, server, lambda: any(str(c.params.get("text")).startswith("▶️ PLAY-1")
                                       for c in posts(mock_slack, CSM)), what="the checklist DM (paced)")
    card = next(c for c in posts(mock_slack, CSM) if str(c.params.get("text")).startswith("▶️ PLAY-1"))
    shown = buttons(card)
    assert list(shown) == ["Done 1", "Done 2", "Done 3", "Close with outcome…"]

    server.post(press_body(*shown["Done 1"], user=CSM, respond_to=mock_slack.url,
                           channel=card.answer["channel"], message_ts=card.answer["ts"]))
    pump(services, server, lambda: any(str(c.params.get("text")).endswith("1/3 steps done")
                                       for c in mock_slack.ok_calls("chat.update")), what="the checklist's edit")

    server.post(press_body(*shown["Close with outcome…"], user=CSM, respond_to=mock_slack.url,
                           channel=card.answer["channel"], message_ts=card.answer["ts"]))
    wait_for(lambda: mock_slack.ok_calls("views.open"), what="the close form")
    view = mock_slack.ok_calls("views.open")[0].params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == "health.close"
    server.post(submit_body("health.close", {"outcome": "saved", "note": "exec call went well"}, user=CSM,
                            metadata=view["private_metadata"], selects=frozenset({"outcome"})))
    pump(services, server, lambda: any(str(c.params.get("text")).endswith("closed: saved")
                                       for c in mock_slack.ok_calls("chat.update")), what="the closed checklist")
    with services.db.transaction() as session:
        play = session.exec(select(HealthPlay)).one()
    assert (play.outcome, play.note, play.closed_by) == ("saved", "exec call went well", CSM)
