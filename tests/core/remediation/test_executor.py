"""The http executor end to end: retries, Retry-After, timeouts, refusals, crashes, one worker per call."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
import respx
from sqlmodel import select

from opsloop.core import Core
from opsloop.errors import IllegalTransition
from opsloop.models import AuditEvent
from opsloop.remediation.service import Remediation
from opsloop.runbooks.models import RunbookRun
from tests.core.remediation.conftest import API, STARTER, approve_twice, call, start, steps
from tests.support import FakeClock

RESTART = f"https://{API}/services/web/restart"


def run_probe(rem: Core, host: str) -> None:
    start(rem, "probe", host=host)
    rem.remediation.work()


def test_503_then_200_is_retried_with_one_idempotency_key(rem: Core, api: respx.MockRouter,
                                                          sleeps: list[float]) -> None:
    route = api.post(RESTART).mock(side_effect=[httpx.Response(503), httpx.Response(200, json={"job": {"id": 7}})])
    api.get(f"https://{API}/jobs/7").mock(return_value=httpx.Response(200))
    start(rem)
    approve_twice(rem)
    rem.remediation.work()
    assert route.call_count == 2
    keys = {c.request.headers["idempotency-key"] for c in route.calls}
    assert len(keys) == 1 and keys.pop().startswith("opsloop-sr")
    first = route.calls[0].request
    assert first.headers["host"] == "ops-api.internal"  # pinned to the checked address, same Host
    assert first.extensions["sni_hostname"] == "ops-api.internal"
    assert sleeps == [0.5]  # no Retry-After: the short backoff
    done = call(rem)
    assert (done.state, done.attempts, done.status) == ("succeeded", 2, 200)
    assert steps(rem)["restart"] == "done"


def test_retry_after_is_honoured_and_capped(rem: Core, api: respx.MockRouter, sleeps: list[float]) -> None:
    api.post(RESTART).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "7"}),
                                        httpx.Response(503, headers={"Retry-After": "3600"}),
                                        httpx.Response(202, json={"job": {"id": 1}})])
    api.get(f"https://{API}/jobs/1").mock(return_value=httpx.Response(200))
    start(rem)
    approve_twice(rem)
    rem.remediation.work()
    assert sleeps == [7.0, 30.0]
    assert call(rem).attempts == 3 and call(rem).state == "succeeded"


def test_statuses_not_listed_are_not_retried(rem: Core, api: respx.MockRouter) -> None:
    route = api.post(RESTART).mock(return_value=httpx.Response(500, text="boom"))
    start(rem)
    approve_twice(rem)
    rem.remediation.work()
    failed = call(rem)
    assert route.call_count == 1 and failed.state == "failed"
    assert failed.error == "expected 200/202, got 500 after 1 attempt(s): boom"
    assert steps(rem)["restart"] == "executor" and steps(rem)["follow"] == "waiting"


def test_a_read_timeout_leaves_the_outcome_unknown_a_connect_timeout_fails(
        rem: Core, api: respx.MockRouter) -> None:
    route = api.post(RESTART).mock(side_effect=httpx.ReadTimeout("slow"))
    start(rem)
    approve_twice(rem)
    rem.remediation.work()
    assert route.call_count == 3
    unknown = call(rem)
    assert unknown.state == "unknown" and "timed out after 20s" in (unknown.error or "")
    assert "may have acted" in (unknown.error or "")
    route.side_effect = httpx.ConnectTimeout("no route")
    rem.commands.handle("/runbook", "retry INC-1 restart", actor=STARTER)
    rem.remediation.work()
    assert call(rem).state == "failed" and "could not reach the API" in (call(rem).error or "")


@pytest.mark.parametrize(("host", "why"), [
    ("evil.example.com", "evil.example.com is not in actions.allow_hosts"),
    ("169.254.169.254", "169.254.169.254 is a cloud metadata address"),
    ("sneaky.internal", "sneaky.internal resolves to 169.254.169.254, which is a cloud metadata address"),
    ("metadata.google.internal", "metadata.google.internal is a cloud metadata service"),
    ("nowhere.internal", "nowhere.internal is not in actions.allow_hosts"),
])
def test_refused_destinations_never_see_a_request(rem: Core, api: respx.MockRouter, host: str,
                                                  why: str) -> None:
    run_probe(rem, host)
    refused = call(rem, "call")
    assert refused.state == "failed" and refused.attempts == 0
    assert why in (refused.error or "")
    assert api.calls.call_count == 0
    with rem.db.transaction() as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "remediation.refused")).one()


def test_a_redirect_is_a_failure_naming_where_it_pointed_and_is_not_followed(
        rem: Core, api: respx.MockRouter) -> None:
    api.post("https://10.9.9.9/probe").mock(
        return_value=httpx.Response(302, headers={"Location": "https://evil.example.com/steal"}))
    evil = api.route(host="evil.example.com").mock(return_value=httpx.Response(200))
    run_probe(rem, "redirector.internal")
    failed = call(rem, "call")
    assert failed.state == "failed" and failed.status == 302
    assert "a redirect to evil.example.com; redirects are never followed" in (failed.error or "")
    assert not evil.called and api.calls.call_count == 1


def test_a_crash_while_sending_becomes_unknown_and_is_never_resent(
        rem: Core, api: respx.MockRouter, clock: FakeClock) -> None:
    class Crash(BaseException):
        """The process dies mid-call (not an error anything may catch)."""

    sent: list[httpx.Request] = []

    def crash(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        raise Crash

    route = api.post(RESTART).mock(side_effect=crash)
    start(rem)
    approve_twice(rem)
    with pytest.raises(Crash):
        rem.remediation.work()
    assert call(rem).state == "sending"  # committed before the request left
    assert rem.remediation.work() == 0  # the lease still runs: nobody touches it
    clock.advance(minutes=5)
    restarted = Remediation(rem.db, rem.policy, clock, rem.authz, rem.runbooks, rem.remediation.executor, rem.bus)
    assert restarted.work() == 0
    assert len(sent) == 1 and route.call_count == 0  # respx does not count a call that killed us
    unknown = call(rem)
    assert unknown.state == "unknown" and "stopped while calling" in (unknown.error or "")
    assert steps(rem)["restart"] == "executor"
    key = sent[0].headers["idempotency-key"]
    route.side_effect = None
    route.return_value = httpx.Response(202, json={"job": {"id": 3}})
    api.get(f"https://{API}/jobs/3").mock(return_value=httpx.Response(200))
    rem.commands.press("remediation.retry", str(unknown.id), actor=STARTER)
    restarted.work()
    assert route.call_count == 1 and route.calls[0].request.headers["idempotency-key"] == key
    assert steps(rem)["restart"] == "done"


def test_an_unknown_outcome_is_settled_by_a_person(rem: Core, api: respx.MockRouter) -> None:
    api.post(RESTART).mock(side_effect=httpx.RemoteProtocolError("dropped"))
    start(rem)
    approve_twice(rem)
    rem.remediation.work()
    unknown = call(rem)
    with pytest.raises(Exception, match="may not confirm"):
        rem.commands.press("remediation.succeeded", str(unknown.id), actor="U0NOBODY")
    reply = rem.commands.handle("/runbook", "confirm INC-1 restart succeeded", actor=STARTER)
    assert "confirmed `restart` succeeded" in reply.text
    assert call(rem).decided_by == STARTER and steps(rem)["restart"] == "done"
    api.get(url__regex=rf"https://{API}/jobs/.*").mock(return_value=httpx.Response(200))
    rem.remediation.work()  # follow runs; its url had no job id to use, so it is what it is
    assert steps(rem)["follow"] == "done"


def test_two_workers_never_both_call_one_step_run(rem: Core, api: respx.MockRouter) -> None:
    barrier = threading.Barrier(2)
    route = api.post(RESTART).mock(return_value=httpx.Response(202, json={"job": {"id": 9}}))
    api.get(f"https://{API}/jobs/9").mock(return_value=httpx.Response(200))
    start(rem)
    approve_twice(rem)
    workers = [Remediation(rem.db, rem.policy, rem.clock, rem.authz, rem.runbooks, rem.remediation.executor, rem.bus,
                           worker=f"w{i}") for i in range(2)]
    ran: list[int] = []

    def go(worker: Remediation) -> None:
        barrier.wait()
        ran.append(worker.work(limit=1))

    threads = [threading.Thread(target=go, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert route.call_count == 1
    assert sorted(ran) in ([0, 1], [1, 1])  # the second may have run the *next* step, never the same
    with rem.db.transaction() as s:
        sending = s.exec(select(AuditEvent).where(AuditEvent.action == "remediation.sending")).all()
        assert [e.after["step"] for e in sending].count("restart") == 1


def test_a_dry_run_renders_and_checks_everything_and_calls_nothing(rem: Core, api: respx.MockRouter) -> None:
    ref = rem.workitems.declare(actor=STARTER, title="API errors").ref
    text = rem.commands.handle("/runbook", f"run remedy {ref} service=web --dry-run", actor=STARTER).text
    assert "nothing started, nothing called" in text
    assert "`POST https://ops-api.internal/services/web/restart`" in text
    assert "Bearer {{ secrets.OPS_API_TOKEN }}" in text
    assert f"✓ allowed (resolves to {API})" in text
    assert "needs `gate`: 2 approval(s) from role approver" in text
    text = rem.commands.handle("/runbook", f"run probe {ref} host=sneaky.internal --dry-run", actor=STARTER).text
    assert "✗ would be refused: sneaky.internal resolves to 169.254.169.254" in text
    assert api.calls.call_count == 0
    assert "remedy" not in steps_of_any(rem)


def steps_of_any(rem: Core) -> set[str]:
    with rem.db.transaction() as s:
        return {r.runbook_id for r in s.exec(select(RunbookRun))}


def test_typed_inputs_keep_their_types_in_the_json_body(rem: Core, api: respx.MockRouter) -> None:
    """An `integer` input is a JSON number, a `boolean` one true/false; text stays text."""
    route = api.post(f"https://{API}/scale").mock(return_value=httpx.Response(200))
    start(rem, "scale", replicas="5", drain="yes")
    rem.remediation.work()
    assert route.call_count == 1
    assert json.loads(route.calls[0].request.content) == {
        "replicas": 5, "drain": True, "note": "7", "label": "x5", "item": "INC-1"}
    assert call(rem, "call").request["json"]["replicas"] == 5  # what was approved and stored, too


def test_pressing_retry_while_its_retry_is_still_queued_starts_no_other_attempt(
        rem: Core, api: respx.MockRouter) -> None:
    """Issue 15: a double click (or a second person) on Retry before the executor has run the first
    retry, and `/runbook retry` typed meanwhile, queue nothing more: one retry, one more call."""
    route = api.post(RESTART).mock(return_value=httpx.Response(500, text="boom"))
    start(rem)
    approve_twice(rem)
    rem.remediation.work()
    failed = call(rem)
    assert (failed.state, route.call_count) == ("failed", 1)
    button = f"{failed.id}:{failed.retries}"  # the value the failure's Retry button carries
    rem.commands.press("remediation.retry", button, actor=STARTER)
    assert call(rem).state == "pending"  # queued, not yet run
    with pytest.raises(IllegalTransition, match="already retried since that button was shown"):
        rem.commands.press("remediation.retry", button, actor=STARTER)
    with pytest.raises(IllegalTransition, match="only a failed or unknown call can be retried"):
        rem.commands.handle("/runbook", "retry INC-1 restart", actor=STARTER)
    assert call(rem).retries == 1
    rem.remediation.work()
    assert route.call_count == 2  # the one retry
    assert rem.remediation.work() == 0 and route.call_count == 2
