"""Issue 9, end to end: signals -> an at-risk account -> its CSM's DM -> Snooze, through `opsloop serve`.

Signals are POSTed to the real /hooks/signals with the `signals` integration's bearer token; the
CSM's buttons are really signed block_actions; the mock Slack records the DM and its edit.
The scheduler runs as in serve, so the snooze's end (a durable timer) is swept for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from bot.bootstrap import Services
from bot.settings import Settings
from opsloop.health.models import HealthPrompt
from opsloop.models import AuditEvent
from tests.bot.e2e import buttons, fields, posts, responses, serve, sweeps_pass, wait_for
from tests.bot.live_server import LiveServer
from tests.bot.mock_slack import Call, MockSlack
from tests.bot.slack_requests import press_body
from tests.support import FakeClock

TOKEN = "signals-token-e2e-5b1f"
CSM, STRANGER = "U0CSM1", "U0RESP1"  # the sample catalog's CSM of acme, globex and initech; a responder


@pytest.fixture
def health_serve(slack_settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[tuple[Services, LiveServer]]:
    monkeypatch.setenv("OPSLOOP_TOKEN_SIGNALS", TOKEN)  # the `health` integration of slack_policy.yml
    with serve(slack_settings.model_copy(update={"sweep_interval": 0.1}), clock) as running:
        yield running


def signal(server: LiveServer, body: Any, token: str = TOKEN) -> httpx.Response:
    assert server.client is not None
    return server.client.post("/hooks/signals", json=body, headers={"Authorization": f"Bearer {token}"})


def bad_news(clock: FakeClock, tenant: str = "acme") -> list[dict[str, Any]]:
    at = clock.now().isoformat()
    return [{"tenant": tenant, "kind": "usage", "value": -1.0, "at": at},
            {"tenant": tenant, "kind": "nps", "value": -100, "at": at}]


def prompts_to(mock: MockSlack, user: str) -> list[Call]:
    return [c for c in posts(mock, user) if "at risk" in str(c.params.get("text"))]


def prompt_row(services: Services, prompt_id: str) -> HealthPrompt:
    with services.db.transaction() as session:
        found = session.get(HealthPrompt, int(prompt_id))
        assert found is not None
        return found


def test_signals_prompt_the_csm_once_and_snooze_silences_it_until_it_runs_out(
    health_serve: tuple[Services, LiveServer], mock_slack: MockSlack, clock: FakeClock
) -> None:
    services, server = health_serve
    refused = signal(server, bad_news(clock), token="not-the-token")
    assert refused.status_code == 401
    unknown = signal(server, {"tenant": "nosuch", "kind": "usage", "value": -1, "at": clock.now().isoformat()})
    assert (unknown.status_code, unknown.json()["field"]) == (422, "tenant")
    assert "nosuch" in unknown.json()["error"]

    healthy = signal(server, {"tenant": "globex", "kind": "usage", "value": 0.4, "at": clock.now().isoformat()})
    assert healthy.json() == {"stored": 1, "tenants": ["globex"], "prompts": 0}
    stored = signal(server, bad_news(clock))  # usage -1 (-30) and NPS -100 (-20): acme scores 50 < 65
    assert stored.json() == {"stored": 2, "tenants": ["acme"], "prompts": 1}

    wait_for(lambda: len(prompts_to(mock_slack, CSM)) == 1, what="the CSM's DM")
    [dm] = prompts_to(mock_slack, CSM)
    assert dm.params["text"] == "⚠️ Acme Corp is at risk: health 50/100"
    assert fields(dm)["Score"].startswith("50/100 · at-risk")
    assert fields(dm)["ARR"] == "$480,000"
    body = " ".join(b["text"]["text"] for b in dm.params["blocks"] if b["type"] == "section" and "text" in b)
    assert "*Usage* -30 pts" in body and "*NPS* -20 pts" in body  # the reasons, with evidence
    shown = buttons(dm)
    assert list(shown) == ["Take it", "Snooze 7 days", "Not a risk"]
    snooze = shown["Snooze 7 days"]
    prompt_id = snooze[1]
    assert prompt_row(services, prompt_id).status == "open"

    # someone who is not acme's CSM presses Snooze: refused privately, nothing changes
    server.post(press_body(*snooze, user=STRANGER, respond_to=mock_slack.url, channel=dm.answer["channel"],
                           message_ts=dm.answer["ts"]))
    wait_for(lambda: any("you may not answer prompts and run plays for Acme Corp" in r for r in responses(mock_slack)),
             what="the refusal")
    refusal = next(c for c in mock_slack.all_calls() if c.method.startswith("respond/"))
    assert refusal.params["response_type"] == "ephemeral"
    assert prompt_row(services, prompt_id).status == "open"
    sweeps_pass(services)
    assert mock_slack.all_calls("chat.update") == []

    # the CSM snoozes it: the DM is edited in place
    server.post(press_body(*snooze, user=CSM, respond_to=mock_slack.url, channel=dm.answer["channel"],
                           message_ts=dm.answer["ts"]))
    wait_for(lambda: len(mock_slack.ok_calls("chat.update")) == 1, what="the DM's edit")
    [edit] = mock_slack.ok_calls("chat.update")
    until = (clock.now() + timedelta(days=7)).date().isoformat()
    assert (edit.params["channel"], edit.params["ts"]) == (dm.answer["channel"], dm.answer["ts"])
    assert edit.params["text"] == (f"Acme Corp was at risk (health 50/100): 💤 snoozed by <@{CSM}> "
                                   f"until {until}")
    assert buttons(edit) == {}  # answered: no buttons left to press
    assert prompt_row(services, prompt_id).status == "snoozed"

    # worse news while snoozed: rescored, but no new prompt
    clock.advance(days=1)
    earlier = (clock.now() - timedelta(days=10)).isoformat()
    worse = signal(server, [{"tenant": "acme", "kind": "tickets", "value": 1, "at": earlier},
                            {"tenant": "acme", "kind": "tickets", "value": 10, "at": clock.now().isoformat()}])
    assert worse.json() == {"stored": 2, "tenants": ["acme"], "prompts": 0}
    assert services.health.view(actor=CSM, account="acme").score.score == 50 - 3 * (10 - 1)
    sweeps_pass(services)
    assert len(prompts_to(mock_slack, CSM)) == 1
    with services.db.transaction() as session:
        actions = [e.action for e in session.exec(select(AuditEvent).where(
            AuditEvent.subject == "account:acme")).all()]
    assert actions.count("health.prompt.sent") == 1 and "health.prompt.snoozed" in actions
    assert "permission.denied" in actions

    # the snooze runs out (a durable timer the scheduler sweeps) while acme is still at risk: asked again
    clock.advance(days=6, hours=1)
    wait_for(lambda: len(prompts_to(mock_slack, CSM)) == 2, what="the prompt after the snooze")
    again = prompts_to(mock_slack, CSM)[1]
    assert again.params["text"] == "⚠️ Acme Corp is at risk: health 23/100"
    assert buttons(again)["Snooze 7 days"][1] != prompt_id
    assert prompt_row(services, prompt_id).end_reason == "snooze expired"
