"""Issue 5, end to end: approval buttons and exception approvals through `opsloop serve` and the mock Slack.

A runbook with a two-approver gate before an http step: the Approve presses are really signed
block_actions, the executor runs in serve's scheduler, and the target API is respx behind the
remediation client (only that client: Slack and the test's own requests stay real).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import respx

from bot.bootstrap import Services
from bot.settings import Settings
from tests.bot.e2e import (
    buttons,
    fields,
    posts,
    pump,
    responses,
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
from tests.core.remediation.conftest import API, SECRET, FakeResolver
from tests.support import FakeClock

REQUESTER, APPROVER2, APPROVER3, RESPONDER = "U0SRE1", "U0SRE2", "U0SRE3", "U0RESP2"
RESTART = f"https://{API}/services/web/restart"  # ops-api.internal, pinned to the address it resolved to

RUNBOOK = """schema_version: 1
id: remedy
version: 1.0.0
title: Restart with approval
owners: [U0SRE1]
inputs:
  service: {type: string, pattern: "^[a-z-]+$", required: true}
steps:
  - id: gate
    type: approval
    approvers: role:approver
    min_approvals: 2
    expires_after: 30m
  - id: restart
    type: http
    request:
      method: POST
      url: "https://ops-api.internal/services/{{ inputs.service }}/restart"
      headers: {Authorization: "Bearer {{ secrets.OPS_API_TOKEN }}"}
      json: {reason: "{{ item.id }}"}
    expect: {status: [200, 202]}
    timeout: 5s
    retry: {attempts: 2, on_status: [503]}
    outputs: {job: $.job.id}
"""


@pytest.fixture
def api() -> respx.Router:
    """The target API; a request it has no route for fails (nothing leaves unseen)."""
    return respx.Router(assert_all_mocked=True)


@pytest.fixture
def rem_serve(tmp_path: Path, slack_settings: Settings, clock: FakeClock, api: respx.Router
              ) -> Iterator[tuple[Services, LiveServer]]:
    policy = slack_policy()
    policy["roles"]["approver"] = ["U0SRE1", "U0SRE2", "U0SRE3"]
    policy["roles"]["responder"].append(REQUESTER)  # an approver who may also start runs
    policy["actions"] = {"allow_hosts": ["ops-api.internal"], "secrets": {"OPS_API_TOKEN": "OPS_API_TOKEN"}}
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "remedy.yaml").write_text(RUNBOOK)
    settings = slack_settings.model_copy(update={"config": write_policy(tmp_path, policy),
                                                 "runbooks_dir": runbooks, "sweep_interval": 0.1})
    client = httpx.Client(transport=httpx.MockTransport(api.handler))
    with serve(settings, clock, http_client=client, resolver=FakeResolver(),
               environ={"OPS_API_TOKEN": SECRET}, sleep=lambda seconds: None) as running:
        yield running
    client.close()


def command(server: LiveServer, mock: MockSlack, name: str, text: str, user: str) -> None:
    answer = server.post(command_body(name, text, user=user, respond_to=mock.url))
    assert answer.status_code == 200


def press(server: LiveServer, mock: MockSlack, message: Call, label: str, user: str) -> None:
    action, value = buttons(message)[label]
    answer = server.post(press_body(action, value, user=user, respond_to=mock.url,
                                    channel=str(message.answer["channel"]), message_ts=str(message.answer["ts"])))
    assert answer.status_code == 200


def said_privately(mock: MockSlack, fragment: str) -> None:
    wait_for(lambda: any(fragment in r for r in responses(mock)), what=f"a private answer with {fragment!r}")


def test_two_distinct_approvers_press_approve_then_the_call_is_made_once_and_reported(
    rem_serve: tuple[Services, LiveServer], mock_slack: MockSlack, clock: FakeClock, api: respx.Router
) -> None:
    services, server = rem_serve
    route = api.post(RESTART).mock(return_value=httpx.Response(202, json={"job": {"id": "j-42"}}))
    command(server, mock_slack, "/incident", 'declare "API errors" sev2', REQUESTER)
    wait_for(lambda: len(posts(mock_slack, "C0OPS")) == 1, what="the card")
    [card] = posts(mock_slack, "C0OPS")
    clock.advance(seconds=1)  # the channel's pace
    command(server, mock_slack, "/runbook", "run remedy INC-1 service=web", REQUESTER)

    def approval_requests() -> list[Call]:
        return [c for c in posts(mock_slack) if str(c.params["text"]).startswith("🔐 Approval needed")]

    pump(services, server, lambda: len(approval_requests()) == 3, limit=30,
         what="the approval request and its DMs")
    [request] = [c for c in approval_requests() if c.params["channel"] == "C0OPS"]
    dms = {c.params["channel"]: c for c in approval_requests() if c.params["channel"] != "C0OPS"}
    assert set(dms) == {APPROVER2, APPROVER3}  # each approver by DM, never the starter
    assert all(list(buttons(dm)) == ["Approve: gate", "Reject: gate"] for dm in dms.values())
    assert request.params["thread_ts"] == card.answer["ts"]  # in the incident's thread
    body = " ".join(b["text"]["text"] for b in request.params["blocks"] if b["type"] == "section" and "text" in b)
    assert "`POST https://ops-api.internal/services/web/restart`" in body
    assert "Bearer {{ secrets.OPS_API_TOKEN }}" in body  # which secret, never its value
    assert fields(request)["Who may approve"] == f"<@{APPROVER2}> or <@{APPROVER3}> (role approver)"
    assert list(buttons(request)) == ["Approve: gate", "Reject: gate"]

    press(server, mock_slack, request, "Approve: gate", REQUESTER)  # started it: never counts
    said_privately(mock_slack, "you started this run")
    press(server, mock_slack, request, "Approve: gate", RESPONDER)  # not an approver
    said_privately(mock_slack, "its approvers are role:approver")
    press(server, mock_slack, request, "Approve: gate", APPROVER2)
    said_privately(mock_slack, f"<@{APPROVER2}> approved step `gate` (1/2); waiting for more approvers")
    press(server, mock_slack, request, "Approve: gate", APPROVER2)  # the same person twice is one approval
    said_privately(mock_slack, "already approved")
    sweeps_pass(services, 3)
    assert not route.called  # one distinct approver of two: nothing is called

    press(server, mock_slack, dms[APPROVER3], "Approve: gate", APPROVER3)  # from the DM
    wait_for(lambda: route.called, what="the call to the API")

    sweeps_pass(services, 3)
    assert route.call_count == 1
    sent = route.calls.last.request
    assert sent.headers["Idempotency-Key"].startswith("opsloop-sr")
    assert sent.headers["Authorization"] == f"Bearer {SECRET}"
    assert json.loads(sent.content) == {"reason": "INC-1"}

    def result() -> list[str]:
        return [t for t in texts(posts(mock_slack)) if t.startswith("✅ `restart`")]

    pump(services, server, result, limit=30, what="the result in the thread")  # after the request's edits
    assert result() == ["✅ `restart` POST ops-api.internal/services/web/restart → 202 · succeeded · 1 attempt"
                        " · outputs job=j-42"]
    [line] = [c for c in posts(mock_slack) if c.params["text"] == result()[0]]
    assert line.params["thread_ts"] == card.answer["ts"]
    completed = "Runbook remedy completed on INC-1"
    pump(services, server, lambda: completed in texts(posts(mock_slack)), what="the run's completion")
    thread = [t for t in texts(posts(mock_slack)) if t in (result()[0], completed)]
    assert thread == [result()[0], completed]  # the step's result, then what it led to

    def settled() -> list[Call]:
        return [c for c in mock_slack.ok_calls("chat.update") if str(c.params["text"]).startswith("✅ `gate`")]

    pump(services, server, lambda: len(settled()) == 3, limit=30, what="every copy of the request edited")
    assert {(c.params["channel"], c.params["ts"]) for c in settled()} == {
        (copy.answer["channel"], copy.answer["ts"]) for copy in [request, *dms.values()]}
    assert all(not buttons(c) for c in settled())
    assert {c.params["text"] for c in settled()} == {
        f"✅ `gate` on INC-1 was approved by <@{APPROVER2}>, <@{APPROVER3}>"}
    everything = json.dumps([c.params for c in mock_slack.all_calls()])
    assert SECRET not in everything  # the secret went to the API and nowhere else


def test_an_exception_is_approved_by_button_announced_and_expires_on_time(
    rem_serve: tuple[Services, LiveServer], mock_slack: MockSlack, clock: FakeClock
) -> None:
    services, server = rem_serve
    command(server, mock_slack, "/exception", '"Deploy during the freeze: TLS fix" expires:1h', REQUESTER)
    wait_for(lambda: len(posts(mock_slack, APPROVER2)) == 1, what="the approver's DM")
    assert posts(mock_slack, REQUESTER) == []  # the requester is an approver, but is not asked
    [asked] = posts(mock_slack, APPROVER2)
    assert asked.params["text"] == f"🙋 <@{REQUESTER}> asks for an exception: EXC-1"
    assert list(buttons(asked)) == ["Approve", "Reject"]

    press(server, mock_slack, asked, "Approve", REQUESTER)  # one's own exception: refused
    said_privately(mock_slack, "you requested EXC-1, so you cannot approve it")
    assert services.workitems.get("EXC-1").item.state == "requested"

    press(server, mock_slack, asked, "Approve", APPROVER2)
    approved = f"✅ EXC-1 was approved by <@{APPROVER2}> until "

    def announced() -> list[str]:
        return [c.params["channel"] for c in posts(mock_slack) if str(c.params["text"]).startswith(approved)]

    pump(services, server, lambda: len(announced()) == 2, what="the announcement")
    assert sorted(announced()) == sorted(["C0OPS", REQUESTER])  # the channel and the requester
    assert services.workitems.get("EXC-1").item.state == "approved"

    clock.advance(hours=1, seconds=1)  # the approval's end: a durable timer swept by serve's scheduler
    expired = "⌛ EXC-1 expired: Deploy during the freeze: TLS fix. The standard path applies again."
    pump(services, server, lambda: len([c for c in posts(mock_slack) if c.params["text"] == expired]) == 2,
         what="the expiry, told to the channel and the requester")
    assert sorted(c.params["channel"] for c in posts(mock_slack) if c.params["text"] == expired) == [
        "C0OPS", REQUESTER]
    assert services.workitems.get("EXC-1").item.state == "expired"
    assert clock.now() - services.workitems.get("EXC-1").item.created_at >= timedelta(hours=1)


def test_pressing_retry_again_once_its_retry_has_run_starts_no_other_attempt(
    rem_serve: tuple[Services, LiveServer], mock_slack: MockSlack, clock: FakeClock, api: respx.Router
) -> None:
    """Issue 15: a Retry button stands for one failure; a second press of it (a double click that
    arrives late, or someone reading an old message) does not call the API again."""
    services, server = rem_serve
    route = api.post(RESTART).mock(return_value=httpx.Response(500, text="boom"))
    command(server, mock_slack, "/incident", 'declare "API errors" sev2', REQUESTER)
    wait_for(lambda: len(posts(mock_slack, "C0OPS")) == 1, what="the card")
    clock.advance(seconds=1)
    command(server, mock_slack, "/runbook", "run remedy INC-1 service=web", REQUESTER)

    def with_button(label: str) -> list[Call]:
        return [c for c in mock_slack.ok_calls("chat.postMessage") + mock_slack.ok_calls("chat.update")
                if label in buttons(c)]

    pump(services, server, lambda: with_button("Approve: gate"), what="the approval request")
    request = with_button("Approve: gate")[0]  # in the thread or a DM: the same round
    press(server, mock_slack, request, "Approve: gate", APPROVER2)
    press(server, mock_slack, request, "Approve: gate", APPROVER3)
    pump(services, server, lambda: with_button("Retry: restart"), limit=30, what="a Retry button")
    assert route.call_count == 1
    retry = with_button("Retry: restart")[-1]
    press(server, mock_slack, retry, "Retry: restart", RESPONDER)
    wait_for(lambda: route.call_count == 2, what="the retry")
    said_privately(mock_slack, "asked to retry `restart`")
    pump(services, server, lambda: len(with_button("Retry: restart")) > 1, what="the second failure")
    press(server, mock_slack, retry, "Retry: restart", RESPONDER)  # the same, older button once more
    said_privately(mock_slack, "was already retried")
    sweeps_pass(services, 5)
    assert route.call_count == 2
