"""The real Bolt app behind `opsloop serve`, driven by really signed requests, against the mock Slack."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import func, select

from bot.bootstrap import Services
from bot.slack import commands as slack_commands
from bot.slack import views
from opsloop.messages import Reply
from opsloop.models import AuditEvent, OutboxMessage, WorkItem
from tests.bot.live_server import LiveServer
from tests.bot.mock_slack import Answer, Call, MockSlack
from tests.bot.slack_requests import command_body, event_body, press_body, submit_body
from tests.support import wait_until as wait_for

COMMANDER, RESPONDER, STRANGER = "U0RESP1", "U0RESP2", "U0NOBODY"
# HTTP-only behaviour: storage is covered on both backends by the flows above it
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def responses(mock: MockSlack) -> list[str]:
    return [str(c.params.get("text")) for c in mock.all_calls() if c.method.startswith("respond/")]


def answered(answer: httpx.Response, mock: MockSlack) -> str:
    """A command's private answer: in the acknowledgement itself, or later through response_url."""
    assert answer.status_code == 200
    if answer.text:
        body = answer.json()
        assert body["response_type"] == "ephemeral"
        return str(body["text"])
    wait_for(lambda: len(responses(mock)) == 1)
    return responses(mock)[0]


def held_commands(services: Services, monkeypatch: pytest.MonkeyPatch,
                  when: Callable[[str], bool] = lambda words: True) -> threading.Event:
    """Commands (those whose text passes `when`) wait in their core thread until the event is set."""
    release = threading.Event()
    handle = services.commands.handle

    def held(name: str, words: str, **kwargs: Any) -> Reply:
        if when(words):
            release.wait(10)
        return handle(name, words, **kwargs)

    monkeypatch.setattr(services.commands, "handle", held)
    return release


def counts(services: Services) -> tuple[int, int, int]:
    with services.db.transaction() as session:
        return (session.exec(select(func.count()).select_from(WorkItem)).one(),
                session.exec(select(func.count()).select_from(OutboxMessage)).one(),
                session.exec(select(func.count()).select_from(AuditEvent)).one())


def cards(mock: MockSlack) -> list[Call]:
    return [c for c in mock.ok_calls("chat.postMessage") if "thread_ts" not in c.params]


def test_declare_then_acknowledge_by_button_updates_the_card_in_place(
    server: LiveServer, mock_slack: MockSlack, slack_services: Services
) -> None:
    answer = server.post(command_body("/incident", 'declare "Checkout API returns 500" sev2 tenant:acme',
                                      user=COMMANDER, respond_to=mock_slack.url))
    assert answered(answer, mock_slack) == "Declared INC-1: Checkout API returns 500 (sev2)"
    server.settle(lambda: len(cards(mock_slack)) == 1)
    [card] = cards(mock_slack)
    assert card.params["channel"] == "C0OPS"
    fields = [f["text"] for b in card.params["blocks"] if "fields" in b for f in b["fields"]]
    assert fields[:4] == ["*Severity*\nsev2", "*State*\ntriggered", "*Tenants*\nacme",
                          f"*Owner*\n<@{COMMANDER}>"]
    buttons = {e["text"]["text"]: (e["action_id"], e["value"])
               for b in card.params["blocks"] if b["type"] == "actions" for e in b["elements"]}
    assert buttons["Acknowledge"] == ("workitem.acknowledge", "INC-1")

    pressed = server.post(press_body(*buttons["Acknowledge"], user=RESPONDER, respond_to=mock_slack.url,
                                     message_ts=card.params.get("ts", "")))
    assert pressed.status_code == 200
    server.settle(lambda: len(mock_slack.ok_calls("chat.update")) == 1
                  and len(mock_slack.ok_calls("chat.postMessage")) == 2)
    [update] = mock_slack.ok_calls("chat.update")
    with slack_services.db.transaction() as session:
        posted = session.exec(select(OutboxMessage).where(OutboxMessage.key == "card:INC-1")).one()
    assert (update.params["channel"], update.params["ts"]) == ("C0OPS", posted.external_id)
    assert "*State*\nacknowledged" in [f["text"] for b in update.params["blocks"] if "fields" in b
                                        for f in b["fields"]]
    assert [b["elements"][0]["action_id"] for b in update.params["blocks"] if b["type"] == "actions"] == [
        "workitem.mitigate"]
    thread = mock_slack.ok_calls("chat.postMessage")[1]
    assert (thread.params["thread_ts"], thread.params["text"]) == (
        posted.external_id, f"<@{RESPONDER}> acknowledged INC-1")
    wait_for(lambda: "INC-1 acknowledged — now acknowledged" in responses(mock_slack))
    respond = next(c for c in mock_slack.all_calls() if c.method.startswith("respond/press"))
    assert (respond.params["response_type"], respond.params["replace_original"]) == ("ephemeral", False)


def test_a_button_pressed_without_the_role_is_refused_privately_and_changes_nothing(
    server: LiveServer, mock_slack: MockSlack, slack_services: Services
) -> None:
    slack_services.workitems.declare(actor=COMMANDER, title="Disk full")
    server.settle(lambda: len(cards(mock_slack)) == 1)
    before = counts(slack_services)
    answer = server.post(press_body("workitem.acknowledge", "INC-1", user=STRANGER,
                                    respond_to=mock_slack.url))
    assert answer.status_code == 200
    wait_for(lambda: any("you may not acknowledge incidents" in r for r in responses(mock_slack)))
    refusal = next(c for c in mock_slack.all_calls() if c.method.startswith("respond/"))
    assert refusal.params["response_type"] == "ephemeral"
    assert refusal.params["text"].startswith("✗ you may not acknowledge incidents: that needs the role")
    assert slack_services.workitems.get("INC-1").item.state == "triggered"
    items, messages, audits = counts(slack_services)
    assert (items, messages, audits) == (before[0], before[1], before[2] + 1)  # only the refusal, audited
    assert mock_slack.all_calls("chat.update") == []


@SQLITE_ONLY
def test_bad_signatures_and_stale_timestamps_get_401_and_change_nothing(
    server: LiveServer, mock_slack: MockSlack, slack_services: Services
) -> None:
    before = counts(slack_services)
    body = command_body("/incident", 'declare "forged"', user=COMMANDER, respond_to=mock_slack.url)
    assert server.post(body, secret="not-the-secret").status_code == 401
    assert server.post(body, timestamp=int(time.time()) - 6 * 60).status_code == 401
    assert server.post(body, timestamp=int(time.time()) + 6 * 60).status_code == 401
    assert server.client is not None
    unsigned = server.client.post("/slack/events", content=body,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert unsigned.status_code == 401
    time.sleep(0.2)  # anything the app would have started has had time to run
    assert counts(slack_services) == before
    assert [c.method for c in mock_slack.all_calls()] == []
    assert server.post(body, timestamp=int(time.time()) - 4 * 60).status_code == 200  # within 5 minutes


def test_declare_without_text_opens_a_modal_whose_submission_declares(
    server: LiveServer, mock_slack: MockSlack, slack_services: Services
) -> None:
    server.post(command_body("/incident", "declare", user=COMMANDER, respond_to=mock_slack.url))
    wait_for(lambda: len(mock_slack.ok_calls("views.open")) == 1)
    [opened] = mock_slack.ok_calls("views.open")
    view = opened.params["view"]
    view = view if isinstance(view, dict) else json.loads(view)
    assert opened.params["trigger_id"].startswith("trigger-")
    assert view["callback_id"] == "incident.declare"
    assert [b["block_id"] for b in view["blocks"]] == ["title", "severity", "tenants"]

    refused = server.post(submit_body("incident.declare", {"title": "  ", "severity": "sev1", "tenants": ""},
                                      user=COMMANDER, metadata=view["private_metadata"]))
    assert refused.json() == {"response_action": "errors", "errors": {"title": "a incident needs a title"}}
    assert counts(slack_services)[0] == 0

    done = server.post(submit_body("incident.declare",
                                   {"title": "Search is slow", "severity": "sev2", "tenants": "acme"},
                                   user=COMMANDER, metadata=view["private_metadata"]))
    assert (done.status_code, done.text) == (200, "")
    item = slack_services.workitems.get("INC-1")
    assert (item.item.title, item.item.severity, item.tenants) == ("Search is slow", "sev2", ["acme"])
    wait_for(lambda: len(mock_slack.ok_calls("chat.postEphemeral")) == 1)
    [told] = mock_slack.ok_calls("chat.postEphemeral")
    assert (told.params["channel"], told.params["user"]) == ("C0OPS", COMMANDER)
    assert told.params["text"] == "Declared INC-1: Search is slow (sev2)"


@SQLITE_ONLY
def test_every_command_answers_help(server: LiveServer, mock_slack: MockSlack) -> None:
    for command in ("/incident", "/escalate", "/exception"):
        answer = server.post(command_body(command, "help", user=STRANGER, respond_to=mock_slack.url))
        assert answer.json()["text"].startswith(f"*{command}* — ")  # answered in the acknowledgement
    assert responses(mock_slack) == []


@SQLITE_ONLY
def test_a_usage_error_is_answered_privately_in_the_acknowledgement(
    server: LiveServer, mock_slack: MockSlack
) -> None:
    answer = server.post(command_body("/incident", 'declare "unclosed', user=COMMANDER,
                                      respond_to=mock_slack.url))
    assert answer.json()["text"].startswith("✗ cannot read that")
    assert answer.json()["response_type"] == "ephemeral"


@SQLITE_ONLY
def test_a_slow_command_is_acknowledged_at_once_and_answered_through_the_response_url(
    server: LiveServer, mock_slack: MockSlack, slack_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = held_commands(slack_services, monkeypatch)  # the command cannot finish before the ack
    try:
        answer = server.post(command_body("/incident", 'declare "unclosed', user=COMMANDER,
                                          respond_to=mock_slack.url))
        # answered while the command is still held: the ack waited for nothing
        # (and an error right after ack() must not undo the ack: Bolt would answer 404 after 3 s)
        assert (answer.status_code, answer.text) == (200, "")
        assert responses(mock_slack) == []
    finally:
        release.set()
    wait_for(lambda: len(responses(mock_slack)) == 1)
    assert responses(mock_slack)[0].startswith("✗ cannot read that")


@SQLITE_ONLY
def test_mentioning_the_bot_answers_in_a_thread(server: LiveServer, mock_slack: MockSlack) -> None:
    body = event_body({"type": "app_mention", "user": STRANGER, "text": "<@U0BOT> help",
                       "ts": "1700000001.000100", "channel": "C0OPS", "event_ts": "1700000001.000100"})
    assert server.post(body, content_type="application/json").status_code == 200
    wait_for(lambda: len(mock_slack.ok_calls("chat.postMessage")) == 1)
    [said] = mock_slack.ok_calls("chat.postMessage")
    assert said.params["thread_ts"] == "1700000001.000100"
    assert "*/incident*" in said.params["text"]


def test_a_declared_incident_survives_two_429s(
    server: LiveServer, mock_slack: MockSlack, slack_services: Services
) -> None:
    limited = Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})
    mock_slack.script("chat.postMessage", limited, limited)
    server.post(command_body("/incident", 'declare "Queue backlog"', user=COMMANDER,
                             respond_to=mock_slack.url))
    server.settle(lambda: len(cards(mock_slack)) == 1, step=0.5)
    assert [c.status for c in mock_slack.all_calls("chat.postMessage")] == [429, 429, 200]
    wait_for(lambda: "opsloop_outbox_delivered_total 1.0" in server.get("/metrics").text)
    assert "opsloop_slack_rate_limited_total 2.0" in server.get("/metrics").text


def test_health_readiness_and_metrics(server: LiveServer, mock_slack: MockSlack,
                                      slack_services: Services) -> None:
    assert server.get("/healthz").json() == {"status": "ok"}
    assert server.get("/readyz").json() == {"status": "ready"}
    mock_slack.down = True
    slack_services.workitems.declare(actor=COMMANDER, title="Disk full")
    server.post(command_body("/incident", "help", user=COMMANDER, respond_to=mock_slack.url))
    server.get("/nope")
    metrics = server.get("/metrics").text
    assert 'opsloop_http_requests_total{route="/slack/events",status="200"} 1.0' in metrics
    assert 'opsloop_http_requests_total{route="/readyz",status="200"} 1.0' in metrics
    assert 'opsloop_http_requests_total{route="other",status="404"} 1.0' in metrics
    assert "opsloop_outbox_depth 1.0" in metrics
    with slack_services.db.engine.begin() as connection:
        (head,) = connection.execute(text("SELECT version_num FROM alembic_version")).one()
        connection.execute(text("UPDATE alembic_version SET version_num = 'behind'"))
    try:
        answer = server.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["reason"] == "database schema is not current: run `opsloop db upgrade`"
    finally:
        with slack_services.db.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
    server.settle(lambda: "opsloop_outbox_delivery_failures_total 0.0" not in server.get("/metrics").text)


@SQLITE_ONLY
def test_a_command_that_would_queue_is_acknowledged_at_once_and_answered_when_its_turn_comes(
    server: LiveServer, mock_slack: MockSlack, slack_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = held_commands(slack_services, monkeypatch, when=lambda words: words == "list")
    monkeypatch.setattr(slack_commands, "INLINE_ANSWER", 1.0)
    try:
        for _ in range(slack_services.pool.threads):  # every core thread busy
            assert server.post(command_body("/incident", "list", user=COMMANDER,
                                            respond_to=mock_slack.url)).text == ""
        # the pool predicts the declare cannot be done in time, so the ack must not wait for it
        assert slack_services.pool.expected_wait() > slack_commands.INLINE_ANSWER
        queued = server.post(command_body("/incident", 'declare "Queue backlog"', user=COMMANDER,
                                          respond_to=mock_slack.url))
        # no inline wait: behind busy threads the answer could not have been ready in time
        assert (queued.status_code, queued.text) == (200, "")
        metrics = server.get("/metrics").text  # not stuck behind the core's backlog
        assert f"opsloop_core_pending {slack_services.pool.threads + 1}.0" in metrics
        assert counts(slack_services)[0] == 0 and responses(mock_slack) == []
    finally:
        release.set()
    wait_for(lambda: len(responses(mock_slack)) == 3)
    assert "Declared INC-1: Queue backlog (sev3)" in responses(mock_slack)
    assert counts(slack_services)[0] == 1
    wait_for(lambda: slack_services.pool.pending == 0)


@SQLITE_ONLY
def test_help_is_answered_in_the_acknowledgement_however_busy_the_core_is(
    server: LiveServer, mock_slack: MockSlack, slack_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = held_commands(slack_services, monkeypatch)
    try:
        for _ in range(slack_services.pool.threads):  # every core thread busy, for as long as the test
            server.post(command_body("/incident", "list", user=COMMANDER, respond_to=mock_slack.url))
        for command, text in (("/incident", "help"), ("/escalate", "HELP"), ("/runbook", "")):
            answer = server.post(command_body(command, text, user=STRANGER, respond_to=mock_slack.url))
            assert answer.status_code == 200
            assert slack_services.commands.help_for(command, text) is not None
            assert answer.json()["text"].startswith(f"*{command}*"), answer.text  # the help, in the ack
        assert slack_services.pool.pending == slack_services.pool.threads  # none of it queued
    finally:
        release.set()
    wait_for(lambda: slack_services.pool.pending == 0)


@SQLITE_ONLY
def test_stopping_the_server_first_carries_out_what_was_acknowledged(
    server: LiveServer, mock_slack: MockSlack, slack_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = held_commands(slack_services, monkeypatch)
    acked = server.post(command_body("/incident", 'declare "Acked before the restart"', user=COMMANDER,
                                     respond_to=mock_slack.url))
    assert (acked.status_code, acked.text) == (200, "")
    stopping = threading.Thread(target=server.stop)
    stopping.start()
    time.sleep(0.3)
    assert stopping.is_alive()  # draining: the declare has not run yet
    release.set()
    stopping.join(timeout=10)
    assert not stopping.is_alive()
    assert counts(slack_services)[0] == 1
    assert "Declared INC-1: Acked before the restart (sev3)" in responses(mock_slack)


@SQLITE_ONLY
def test_a_submission_behind_busy_threads_closes_the_modal_and_its_outcome_follows_privately(
    server: LiveServer, mock_slack: MockSlack, slack_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.post(command_body("/incident", "declare", user=COMMANDER, respond_to=mock_slack.url))
    wait_for(lambda: len(mock_slack.ok_calls("views.open")) == 1)
    view = mock_slack.ok_calls("views.open")[0].params["view"]
    metadata = (view if isinstance(view, dict) else json.loads(view))["private_metadata"]
    release = held_commands(slack_services, monkeypatch)
    try:
        for _ in range(slack_services.pool.threads):  # every core thread busy for long
            server.post(command_body("/incident", "list", user=COMMANDER, respond_to=mock_slack.url))
        time.sleep(0.3)  # long enough that the pool expects more than Slack's patience
        monkeypatch.setattr(views, "SUBMIT_WAIT", 0.25)
        for title in ("Search is slow", "  "):
            # the pool predicts no outcome in time: the modal closes without waiting for one
            assert slack_services.pool.expected_wait() > views.SUBMIT_WAIT
            closed = server.post(submit_body("incident.declare", {"title": title, "severity": "sev2",
                                                                  "tenants": ""},
                                             user=COMMANDER, metadata=metadata))
            assert (closed.status_code, closed.text) == (200, "")  # the modal closes; no field errors
        assert counts(slack_services)[0] == 0
    finally:
        release.set()
    wait_for(lambda: len(mock_slack.ok_calls("chat.postEphemeral")) == 2)
    told = sorted(str(c.params["text"]) for c in mock_slack.ok_calls("chat.postEphemeral"))
    assert told == ["Declared INC-1: Search is slow (sev2)", "✗ a incident needs a title"]
    assert counts(slack_services)[0] == 1
