"""Risk-intervention prompts: when an account turns at-risk its CSM gets one DM, and answers it.

One episode, one prompt: `evaluate` runs after every recompute. An account
at risk with no current prompt gets one (a DM through the outbox, keyed by the
prompt, so it is never sent twice). While the prompt is open, taken, dismissed
("not a risk") or snoozed, nothing more is sent; when the snooze runs out and
the account is still at risk, the prompt ends and a new one goes out. When
the account leaves at-risk the prompt ends as `recovered`, which, with what the
CSM answered, is the outcome the team reviews. Every step is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlmodel import Session, col, select

from opsloop import audit, outbox
from opsloop.durations import format_duration
from opsloop.errors import InvalidInput, OpsloopError
from opsloop.health.config import HealthPolicy
from opsloop.health.models import DISMISSED, OPEN, SNOOZED, TAKEN, HealthPrompt, ScoreRow
from opsloop.health.playbooks import Playbooks
from opsloop.health.score import AT_RISK, AccountFacts, Assessment
from opsloop.messages import Button, Message, user
from opsloop.outbox import CHAT
from opsloop.timers.models import Timer
from opsloop.types import OPSLOOP

SNOOZE_END = "health.snooze_end"  # the timer that re-evaluates a tenant when its snooze runs out
LABELS = {"incidents": "Incidents", "sla_breaches": "SLA breaches", "open_escalations": "Open escalations",
          "open_exceptions": "Open exceptions", "usage": "Usage", "nps": "NPS", "tickets": "Ticket volume",
          "renewal": "Renewal rule"}
ANSWERS = {"take": TAKEN, "snooze": SNOOZED, "dismiss": DISMISSED}
TOP_REASONS = 3


def prompt_key(prompt_id: int) -> str:
    """The outbox key of a prompt's DM; answering edits it in place."""
    return f"health:prompt:{prompt_id}"


def current(session: Session, tenant: str) -> HealthPrompt | None:
    return current_many(session, [tenant]).get(tenant)


def current_many(session: Session, tenants: Sequence[str] | None, *,
                 lock: bool = False) -> dict[str, HealthPrompt]:
    """The current prompt of each tenant that has one (`None`: of every tenant)."""
    if tenants is not None and not tenants:
        return {}  # nothing to read (a rescore usually has no prompt to look at: one query saved)
    query = select(HealthPrompt).where(col(HealthPrompt.ended_at).is_(None))
    if tenants is not None:
        query = query.where(col(HealthPrompt.tenant_id).in_(tenants))
    return {p.tenant_id: p for p in session.exec(query.with_for_update() if lock else query)}


@dataclass(frozen=True)
class PromptState:
    id: int
    status: str
    snoozed_until: datetime | None


def current_states(session: Session, tenants: Sequence[str] | None) -> dict[str, PromptState]:
    """The current prompt of each tenant, as plain values (no lock: see `needs_look`)."""
    query = select(HealthPrompt.tenant_id, HealthPrompt.id, HealthPrompt.status,
                   HealthPrompt.snoozed_until).where(col(HealthPrompt.ended_at).is_(None))
    if tenants is not None:
        query = query.where(col(HealthPrompt.tenant_id).in_(tenants))
    return {tenant: PromptState(int(pid or 0), status, until)
            for tenant, pid, status, until in session.exec(query)}


def needs_look(band: str, state: PromptState | None, now: datetime) -> bool:
    """Whether `evaluate` could do anything: prompt an account newly at risk, end an episode that
    is over, or follow a snooze that ran out. Everything else (at risk with its prompt open,
    taken, dismissed or still snoozed; healthy with no prompt) is left alone without loading it."""
    if band != AT_RISK:
        return state is not None
    if state is None:
        return True
    return state.status == SNOOZED and state.snoozed_until is not None and state.snoozed_until <= now


def evaluate(
    session: Session, account: AccountFacts, assessment: Assessment, score: ScoreRow,
    previous: ScoreRow | None, prompt: HealthPrompt | None, config: HealthPolicy, playbooks: Playbooks, *,
    now: datetime, today: date,
) -> HealthPrompt | None:
    """Prompt the CSM if this assessment starts a risk episode; end an episode that is over.

    `prompt` is the tenant's current prompt, locked by the caller. Returns the new
    prompt, if one was sent."""
    if assessment.band != AT_RISK:
        if prompt is not None:
            _end(session, prompt, "recovered", now, score=assessment.score)
        return None
    if prompt is not None:
        if prompt.status != SNOOZED or prompt.snoozed_until is None or prompt.snoozed_until > now:
            return None  # open, taken, dismissed, or still snoozed: never repeated
        _end(session, prompt, "snooze expired", now, score=assessment.score)
    if account.csm is None:
        audit.record(session, at=now, actor=OPSLOOP, action="health.prompt.skipped",
                     subject=f"account:{account.id}", after={"reason": "the account has no CSM"})
        return None
    reasons = assessment.reasons()
    prompt = HealthPrompt(tenant_id=account.id, csm=account.csm, opened_at=now, score_id=score.id,
                          score=assessment.score, reasons=reasons, playbook=playbooks.suggest(reasons))
    session.add(prompt)
    session.flush()
    assert prompt.id is not None
    message = prompt_message(account, assessment, previous, prompt, config, playbooks, today=today)
    outbox.enqueue(session, transport=CHAT, target=account.csm, now=now, key=prompt_key(prompt.id),
                   payload={"message": message.to_json()})
    audit.record(session, at=now, actor=OPSLOOP, action="health.prompt.sent", subject=f"account:{account.id}",
                 after={"prompt": prompt.id, "csm": account.csm, "score": assessment.score,
                        "reasons": reasons, "playbook": prompt.playbook})
    return prompt


def answer(session: Session, prompt: HealthPrompt, verb: str, *, actor: str, now: datetime,
           snooze: timedelta, account_name: str) -> HealthPrompt:
    """Take, snooze or dismiss a prompt (the caller has authorised `actor` and locked the prompt)."""
    status = ANSWERS.get(verb)
    if status is None:
        raise InvalidInput(f"unknown answer {verb!r} (take, snooze or dismiss)")
    if prompt.ended_at is not None:
        raise InvalidInput(f"this prompt about {account_name} is over ({prompt.end_reason})")
    if prompt.status in (TAKEN, DISMISSED):
        who = user(prompt.answered_by) if prompt.answered_by else "someone"
        raise InvalidInput(f"{who} already answered this prompt about {account_name}: {prompt.status}")
    before = {"status": prompt.status, "snoozed_until": prompt.snoozed_until}
    prompt.status, prompt.answered_by, prompt.answered_at = status, actor, now
    prompt.snoozed_until = now + snooze if status == SNOOZED else None
    session.add(prompt)
    if status == SNOOZED:
        assert prompt.snoozed_until is not None
        session.add(Timer(kind=SNOOZE_END, due_at=prompt.snoozed_until, created_at=now,
                          payload={"prompt": prompt.id, "tenant": prompt.tenant_id}))
    audit.record(session, at=now, actor=actor, action=f"health.prompt.{status}",
                 subject=f"account:{prompt.tenant_id}", before=before,
                 after={"prompt": prompt.id, "status": status, "snoozed_until": prompt.snoozed_until})
    assert prompt.id is not None
    outbox.enqueue(session, transport=CHAT, target=prompt.csm, now=now, update_key=prompt_key(prompt.id),
                   lane=f"{CHAT}:{prompt.csm}:edit:{prompt_key(prompt.id)}", supersede=True,
                   payload={"message": answered_message(prompt, account_name).to_json()})
    return prompt


def _end(session: Session, prompt: HealthPrompt, reason: str, now: datetime, *, score: int) -> None:
    prompt.ended_at, prompt.end_reason = now, reason
    session.add(prompt)
    session.flush()  # the partial unique index sees it ended before a new prompt is added
    audit.record(session, at=now, actor=OPSLOOP, action="health.prompt.ended",
                 subject=f"account:{prompt.tenant_id}",
                 after={"prompt": prompt.id, "reason": reason, "status": prompt.status,
                        "answered_by": prompt.answered_by, "score_then": prompt.score, "score_now": score})


# --------------------------------------------------------------------------- what the CSM reads


def prompt_message(account: AccountFacts, assessment: Assessment, previous: ScoreRow | None,
                   prompt: HealthPrompt, config: HealthPolicy, playbooks: Playbooks, *,
                   today: date) -> Message:
    before = None if previous is None else \
        Assessment.from_json(previous.score, previous.band, previous.factors)
    change = "first score" if previous is None else f"{_signed(assessment.score - previous.score)} " \
        f"since {previous.at.date().isoformat()} (was {previous.score}, {previous.band})"
    lines = ["*Why*"]
    for name in assessment.reasons()[:TOP_REASONS]:
        lines.append(f"• {reason_line(name, assessment, before)}")
    if prompt.playbook is not None:
        lines += ["", f"*Suggested playbook: {prompt.playbook}*",
                  playbook_summary(playbooks, prompt.playbook)]
    assert prompt.id is not None
    return Message(
        text=f"⚠️ {account.name} is at risk: health {assessment.score}/100",
        fields=[("Score", f"{assessment.score}/100 · {assessment.band} · {change}"),
                ("ARR", f"${account.arr:,}"), ("Renewal", renewal_text(account.renewal_date, today)),
                ("Tier", account.tier)],
        body="\n".join(lines)[:2900],  # Slack's section text limit is 3000
        buttons=[Button("Take it", "health.take", str(prompt.id), "primary"),
                 Button(f"Snooze {_span(config.snooze)}", "health.snooze", str(prompt.id)),
                 Button("Not a risk", "health.dismiss", str(prompt.id), "danger")],
        context=f"Prompt {prompt.id} · you are the CSM of {account.id} · `/health {account.id}` for detail",
    )


def playbook_summary(playbooks: Playbooks, playbook_id: str) -> str:
    """The playbook's summary and the shape of its checklist, as the prompt and the play show it."""
    try:
        book = playbooks.load(playbook_id).playbook
    except OpsloopError as error:  # removed or broken since: say so rather than fail the prompt
        return f"(playbook {playbook_id} cannot be read: {str(error).splitlines()[0]})"
    hours = max(step.due for step in book.steps).total_seconds() / 3600
    return f"{book.summary}\n{len(book.steps)} steps, the last due {hours:g} working hours after you take it."


def reason_line(name: str, now: Assessment, before: Assessment | None) -> str:
    """`Usage -15 pts: usage trend -0.50 (was +0.05, moved -0.55)`, or a rule's evidence."""
    rule = next((r for r in now.rules if r.name == name), None)
    if rule is not None:
        return f"*{LABELS[name]}*: {rule.evidence}"
    factor = now.factor(name)
    assert factor is not None
    line = f"*{LABELS[name]}* -{factor.points:g} pts: {factor.evidence}"
    old = before.factor(name) if before is not None else None
    if old is not None and factor.value is not None and old.value is not None and old.value != factor.value:
        line += f" (was {old.value:g}, moved {_signed(factor.value - old.value)})"
    elif old is None and before is not None and factor.value is not None:
        line += " (new)"
    return line


def answered_message(prompt: HealthPrompt, account_name: str) -> Message:
    what = {TAKEN: f"✅ {user(prompt.answered_by)} took it",
            SNOOZED: f"💤 snoozed by {user(prompt.answered_by)} until "
                     f"{prompt.snoozed_until.date().isoformat() if prompt.snoozed_until else '?'}",
            DISMISSED: f"🚫 {user(prompt.answered_by)}: not a risk",
            OPEN: "open"}[prompt.status]
    return Message(text=f"{account_name} was at risk (health {prompt.score}/100): {what}",
                   context=f"Prompt {prompt.id} · playbook: {prompt.playbook or '—'}")


def renewal_text(renewal: date | None, today: date) -> str:
    if renewal is None:
        return "—"
    days = (renewal - today).days
    when = f"in {days} days" if days >= 0 else f"{-days} days ago"
    return f"{renewal.isoformat()} ({when})"


def _signed(value: float) -> str:
    return f"+{value:g}" if value > 0 else f"-{-value:g}" if value < 0 else "±0"


def _span(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    if days == int(days) and days >= 1:
        return f"{int(days)} day{'s' if days != 1 else ''}"
    return format_duration(delta)
