"""How remediation looks to people: exactly what will be called, who may approve, what came back.

Secrets are never shown: a marker renders as `{{ secrets.NAME }}` (which
secret, not its value). Everything user-supplied is escaped for Slack mrkdwn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
from sqlmodel import Session, col, select

from opsloop import outbox
from opsloop.copies import settle_copies
from opsloop.durations import format_duration
from opsloop.events import ApprovalDecided, ApprovalRequested, CallFinished, GateReopened
from opsloop.messages import Button, Message, escape, target, user
from opsloop.outbox import CHAT
from opsloop.present.items import Cards, card_key
from opsloop.remediation.decisions import CallDecision
from opsloop.remediation.models import FAILED, SENDING, SUCCEEDED, UNKNOWN, ApprovalRound, RemediationCall
from opsloop.remediation.secrets import mask, plain
from opsloop.runbooks import states as S
from opsloop.runbooks.models import RunbookRun, RunbookStepRun
from opsloop.runbooks.pinning import runbook_of, snapshot_of
from opsloop.runbooks.runs import Runbooks
from opsloop.runbooks.schema import ApprovalStep
from opsloop.types import OPSLOOP, Kind

MAX_BODY = 1200


def _url(request: Mapping[str, Any]) -> httpx.URL | None:
    """The request's URL, or None when it holds a secret or cannot be read (the call will say why)."""
    text = plain(str(request.get("url", "")))
    try:
        return httpx.URL(text) if text is not None else None
    except (httpx.InvalidURL, ValueError, TypeError):
        return None


def request_text(request: Mapping[str, Any]) -> str:
    """`POST ops-api.internal /services/web/restart`, then headers and the JSON body, masked."""
    if "error" in request:
        return f"✗ cannot render this request: {escape(str(request['error']))}"
    url = _url(request)
    shown = mask(request)
    if url is None:
        lines = [f"`{request['method']} {escape(str(shown.get('url')))}`",
                 "✗ this URL cannot be called (it cannot be read, or it holds a secret)"]
    else:
        lines = [f"`{request['method']} {url.scheme}://{escape(url.netloc.decode())}"
                 f"{escape(url.raw_path.decode())}`",
                 f"host `{escape(url.host)}` · path `{escape(url.path)}`"]
    headers = shown.get("headers") or {}
    if headers:
        lines.append("headers: " + ", ".join(f"`{escape(k)}: {escape(str(v))}`" for k, v in headers.items()))
    if shown.get("json") is not None:
        body = json.dumps(shown["json"], indent=None, sort_keys=True, ensure_ascii=False)
        if len(body) > MAX_BODY:
            body = body[:MAX_BODY] + "…"
        lines.append(f"body: ```{escape(body)}```")
    return "\n".join(lines)


def approvers_text(approvers: list[str]) -> str:
    return " or ".join(target(a) for a in approvers)


def who_may_approve(approvers: list[str], asked: list[str]) -> str:
    """The people by name, then the rule that names them: `@ana or @bo (role approver)`."""
    if not asked:
        return f"nobody: {approvers_text(approvers)} names no one but the person who started the run"
    return f"{' or '.join(user(p) for p in asked)} ({approvers_text(approvers)})"


def approval_request(*, ref: str, runbook: str, version: str, gate_id: str, approvers: list[str],
                     min_approvals: int, requester: str, requests: Mapping[str, Mapping[str, Any]],
                     round_id: int, number: int, expires: str | None, why: str | None,
                     asked: list[str], decided_with: str | None = None) -> Message:
    """The request in the thread and in each approver's DM. `decided_with`: the exception whose
    own approval decides this gate (one decision, announced by the exception)."""
    again = f" (request #{number})" if number > 1 else ""
    parts = [f"_{escape(why)}_"] if why else []
    for step_id, request in requests.items():
        parts.append(f"*Step `{step_id}` will call:*\n{request_text(request)}")
    if not requests:
        parts.append("No http call depends on this gate; approving lets the next steps start.")
    return Message(
        text=f"🔐 Approval needed on {ref}: `{gate_id}` of runbook {runbook} {version}{again}",
        fields=[("Who may approve", who_may_approve(approvers, asked)),
                ("Needed", f"approving or rejecting {decided_with} decides it" if decided_with else
                           f"{min_approvals} distinct approver(s), not {user(requester)} who started it"),
                *([("Expires", expires)] if expires else [])],
        body="\n\n".join(parts),
        buttons=[Button(f"Approve: {gate_id}", "gate.approve", str(round_id), "primary"),
                 Button(f"Reject: {gate_id}", "gate.reject", str(round_id), "danger")],
        context="An approval holds only for exactly this request: if it changes, approval is asked again.",
    )


def call_summary(call: RemediationCall) -> str:
    request = call.request or {}
    where = ""
    url = _url(request) if "url" in request else None
    if url is not None:
        where = f"{request.get('method', '')} {url.host}{url.path}"
    return escape(where) or call.step_id


def error_text(call: RemediationCall) -> str | None:
    """Why a call failed, or who settled its outcome by hand (as mrkdwn: the error escaped)."""
    if call.decided_by is not None and call.state in (SUCCEEDED, FAILED):
        return f"confirmed {call.state} by {user(call.decided_by)}"
    return escape(call.error) if call.error else None


def result_line(call: RemediationCall, outputs: Mapping[str, Any]) -> str:
    attempts = f"{call.attempts} attempt{'s' if call.attempts != 1 else ''}"
    status = f" → {call.status}" if call.status is not None else ""
    head = {SUCCEEDED: "✅", FAILED: "❌", UNKNOWN: "❓"}.get(call.state, "•")
    line = f"{head} `{call.step_id}` {call_summary(call)}{status} · {call.state} · {attempts}"
    if outputs:
        line += " · outputs " + ", ".join(f"{k}={escape(str(v))}" for k, v in outputs.items())
    error = error_text(call)
    if error:
        line += f"\n      {error}"
    return line


def call_status(call: RemediationCall) -> str:
    """The checklist's status of an http step, by the state of its call."""
    status = f" {call.status}" if call.status is not None else ""
    error = f": {text}" if (text := error_text(call)) else ""
    return {
        "pending": "waiting for the remediation executor (it checks the approvals, then calls)",
        "approved": "approved; about to be called",
        SENDING: f"calling now (attempt budget until {call.lease_until:%H:%M:%S} UTC)" if call.lease_until
        else "calling now",
        SUCCEEDED: f"succeeded{status} after {call.attempts} attempt(s)",
        FAILED: f"failed{status} after {call.attempts} attempt(s){error} — retry, or skip it saying why",
        UNKNOWN: f"outcome unknown{error} — check the target, then mark it, or retry "
                 "(the same Idempotency-Key is sent)",
    }.get(call.state, call.state)


def call_buttons(call: RemediationCall, run_id: int) -> list[Button]:
    value = f"{call.id}:{call.retries}"  # the outcome it answers (see RemediationCall.retries)
    skip = Button(f"Skip: {call.step_id}", "runbook.skip", f"{run_id}:{call.step_id}")
    if call.state == UNKNOWN:
        return [Button(f"It succeeded: {call.step_id}", "remediation.succeeded", value, "primary"),
                Button(f"It failed: {call.step_id}", "remediation.failed", value, "danger"),
                Button(f"Retry: {call.step_id}", "remediation.retry", value), skip]
    if call.state == FAILED:
        return [Button(f"Retry: {call.step_id}", "remediation.retry", value), skip]
    return []


def decision_text(decision: CallDecision) -> str:
    """The answer to the person who settled a call or asked for a retry."""
    if decision.verb == "retry":
        return (f"{user(decision.actor)} asked to retry `{decision.step_id}` "
                f"(Idempotency-Key {decision.idempotency_key})")
    return f"{user(decision.actor)} confirmed `{decision.step_id}` {decision.verb}"


class RemediationWords:
    """Approval requests in the item's thread and in each approver's DM, settled everywhere once
    decided; call results in the item's thread."""

    def __init__(self, cards: Cards, runbooks: Runbooks) -> None:
        self.cards = cards
        self.runbooks = runbooks

    def requested(self, session: Session, event: ApprovalRequested) -> None:
        run = session.get(RunbookRun, event.run_id)
        assert run is not None
        gate = runbook_of(snapshot_of(session, run)).step(event.gate_id)
        assert isinstance(gate, ApprovalStep)
        expires = (f"in {format_duration(event.expires_after)} ({event.expires_at:%H:%M} UTC) unless approved"
                   if event.expires_after and event.expires_at else None)
        # an exception's gate is the exception's own decision: its approvers are asked by the exception
        exception = event.item.kind == Kind.EXCEPTION.value
        asked = self.runbooks.people(gate.approvers, besides=event.requester)
        message = approval_request(
            ref=event.item.ref, runbook=event.runbook_id, version=event.version, gate_id=gate.id,
            approvers=gate.approvers, min_approvals=gate.min_approvals, requester=event.requester,
            requests=event.requests, round_id=event.round_id, number=event.number, expires=expires,
            why=event.why, asked=asked, decided_with=event.item.ref if exception else None)
        outbox.enqueue(session, transport=CHAT, target=event.item.channel or "", now=event.at,
                       thread_key=card_key(event.item.ref), key=f"gate-round:{event.round_id}",
                       payload={"message": message.to_json()})
        for person in [] if exception else asked:
            outbox.enqueue(session, transport=CHAT, target=person, now=event.at,
                           key=f"gate-ask:{event.round_id}:{person}", payload={"message": message.to_json()})

    def decided(self, session: Session, event: ApprovalDecided) -> None:
        """Approved (enough approvals) or rejected: every copy of the request says so, buttons gone."""
        if event.after not in (S.APPROVED, S.REJECTED):
            return
        row = session.exec(select(RunbookStepRun).where(RunbookStepRun.run_id == event.run_id,
                                                        RunbookStepRun.step_id == event.step_id)).one()
        if event.after == S.APPROVED:
            by = ", ".join(user(a["by"]) for a in row.approvals)
            outcome = f"✅ `{event.step_id}` on {event.item.ref} was approved by {by}"
        else:
            why = f": {escape(event.reason)}" if event.reason else ""
            outcome = f"⛔ `{event.step_id}` on {event.item.ref} was rejected by {user(event.actor)}{why}"
        for round_id in _rounds(session, row, closed=False):
            settle_copies(session, keys=[f"gate-round:{round_id}"], prefixes=[f"gate-ask:{round_id}:"],
                          outcome=outcome, now=event.at)

    def finished(self, session: Session, event: CallFinished) -> None:
        call = session.get(RemediationCall, event.call_id)
        assert call is not None
        line = result_line(call, event.outputs)
        self.cards.story(session, event.item, event.actor, event.action, line, event.at)
        self.cards.say(session, event.item, line, event.at)

    def reopened(self, session: Session, event: GateReopened) -> None:
        self.cards.story(session, event.item, OPSLOOP, "runbook.gate.reopened",
                         f"Approval of `{event.gate_id}` is asked again: {event.why}", event.at)
        row = session.exec(select(RunbookStepRun).where(RunbookStepRun.run_id == event.run_id,
                                                        RunbookStepRun.step_id == event.gate_id)).one()
        outcome = (f"⌛ This request for `{event.gate_id}` on {event.item.ref} no longer holds "
                   f"({escape(event.why)}); approval is asked again in a new request")
        for round_id in _rounds(session, row, closed=True):
            settle_copies(session, keys=[f"gate-round:{round_id}"], prefixes=[f"gate-ask:{round_id}:"],
                          outcome=outcome, now=event.at)


def _rounds(session: Session, row: RunbookStepRun, *, closed: bool) -> list[int]:
    """The gate's rounds: those closed (lapsed, replaced), or the newest (the one just decided)."""
    rounds = session.exec(select(ApprovalRound).where(ApprovalRound.step_run_id == row.id)
                          .order_by(col(ApprovalRound.number).desc())).all()
    if closed:
        return [r.id for r in rounds if r.closed_at is not None and r.id is not None]
    return [rounds[0].id] if rounds and rounds[0].id is not None else []
