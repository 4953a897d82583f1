"""Plays: what follows "Take it" — a playbook's steps with due dates, reminders, and an outcome.

`take` opens a play on an account (from its prompt's Take it button, or `/health take ACCOUNT`):
the suggested playbook (or the one named) is pinned by id, version and content hash and its steps
are copied with due times computed on the plays' calendar (`health.plays.calendar`, working time
from the SLA calendars). Its owner gets the checklist as a DM that is edited in place as steps
are done, and durable timers remind them: `remind_before` a step is due, then every
`remind_every` while it is overdue. A play on a high-risk account of the tiers of
`health.executive` also tells the account's executive sponsor, or else the `leader` role.
`close` records the outcome (saved, churned, contracted, expanded, not-a-risk) with a note.
Every step is audited (`health.play.opened|step_done|reminded|escalated|closed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from opsloop import audit, outbox
from opsloop.errors import InvalidInput, NotFound
from opsloop.health import prompts
from opsloop.health.models import (
    OPEN,
    PLAY_OUTCOMES,
    SNOOZED,
    HealthPlay,
    HealthPlayStep,
    HealthPrompt,
)
from opsloop.health.playbooks import DEPRECATED, RETIRED, LoadedPlaybook
from opsloop.health.present_plays import card, reminder
from opsloop.messages import user
from opsloop.models import Account
from opsloop.outbox import CHAT
from opsloop.sla.calendars import WorkingTime
from opsloop.timers.models import Timer
from opsloop.types import OPSLOOP

REMIND = "health.play.remind"  # the timer kind: payload {step, stage: soon | overdue}
MAX_NOTE = 1000


@dataclass
class PlayView:
    play: HealthPlay
    steps: list[HealthPlayStep]
    account: Account
    zone: ZoneInfo  # due times are shown in the policy's time zone
    warning: str | None = None  # e.g. the playbook is deprecated

    @property
    def ref(self) -> str:
        return play_ref(self.play)


def play_ref(play: HealthPlay) -> str:
    return f"PLAY-{play.id}"


def card_key(play_id: int) -> str:
    return f"health:play:{play_id}"


def parse_ref(text: str) -> int:
    number = text.strip().upper().removeprefix("PLAY-")
    if not number.isdigit() or len(number) > 12:
        raise InvalidInput(f"{text!r} is not a play (write PLAY-3 or 3)")
    return int(number)


def open_play(session: Session, account: Account, loaded: LoadedPlaybook, *, owner: str, score: int,
              prompt: HealthPrompt | None, calendar: WorkingTime, remind_before: timedelta,
              zone: ZoneInfo, now: datetime) -> PlayView:
    """Open a play in the caller's transaction (which holds the audit chain; `actor` authorised)."""
    book = loaded.playbook
    if book.status == RETIRED:
        raise InvalidInput(f"playbook {book.id} is retired; pick another with playbook:ID")
    running = open_of(session, account.id)
    if running is not None:
        raise InvalidInput(f"{account.name} already has {play_ref(running)} ({running.playbook_id}, owned by "
                           f"{user(running.owner)}): see `/health play {play_ref(running)}`")
    if prompt is not None and prompt.status in (OPEN, SNOOZED):
        prompts.answer(session, prompt, "take", actor=owner, now=now, snooze=timedelta(0),
                       account_name=account.name)
    play = HealthPlay(tenant_id=account.id, prompt_id=prompt.id if prompt else None, owner=owner,
                      playbook_id=book.id, playbook_version=book.version, playbook_sha256=loaded.sha256,
                      opened_at=now, score=score)
    session.add(play)
    session.flush()
    assert play.id is not None
    steps = [HealthPlayStep(play_id=play.id, position=i, step_id=step.id, title=step.title,
                            due_at=calendar.add(now, step.due)) for i, step in enumerate(book.steps)]
    session.add_all(steps)
    session.flush()
    for step, spec in zip(steps, book.steps, strict=True):
        if spec.due > remind_before:
            session.add(Timer(kind=REMIND, due_at=calendar.add(now, spec.due - remind_before), created_at=now,
                              payload={"step": step.id, "stage": "soon"}))
        session.add(Timer(kind=REMIND, due_at=step.due_at, created_at=now,
                          payload={"step": step.id, "stage": "overdue"}))
    view = PlayView(play, steps, account, zone,
                    f"playbook {book.id} is deprecated" if book.status == DEPRECATED else None)
    outbox.enqueue(session, transport=CHAT, target=owner, now=now, key=card_key(play.id),
                   payload={"message": card(view, now).to_json()})
    audit.record(session, at=now, actor=owner, action="health.play.opened", subject=f"account:{account.id}",
                 after={"play": play.id, "playbook": book.id, "version": book.version,
                        "sha256": loaded.sha256,
                        "prompt": play.prompt_id, "score": score,
                        "steps": {s.step_id: s.due_at for s in steps}})
    return view


def escalate(session: Session, view: PlayView, executives: list[str], *, now: datetime, why: str) -> None:
    """Tell the executives (sponsor or leaders) about a play on a high-risk account."""
    play = view.play
    play.escalated_to = executives
    session.add(play)
    message = card(view, now, for_owner=False)
    for person in executives:
        outbox.enqueue(session, transport=CHAT, target=person, now=now,
                       key=f"health:play:{play.id}:executive:{person}",
                       payload={"message": {**message.to_json(),
                                            "text": f"🚨 Executive escalation: {message.text}",
                                            "context": why}})
    audit.record(session, at=now, actor=OPSLOOP, action="health.play.escalated",
                 subject=f"account:{play.tenant_id}", after={"play": play.id, "to": executives, "why": why})


def load(session: Session, play_id: int, zone: ZoneInfo, *, lock: bool = False) -> PlayView:
    play = session.get(HealthPlay, play_id, with_for_update=lock)
    account = session.get(Account, play.tenant_id) if play is not None else None
    if play is None or account is None:
        raise NotFound(f"no play PLAY-{play_id}")
    steps = list(session.exec(select(HealthPlayStep).where(HealthPlayStep.play_id == play_id)
                              .order_by(col(HealthPlayStep.position))))
    return PlayView(play, steps, account, zone)


def load_open(session: Session, zone: ZoneInfo, *, owner: str | None = None) -> list[PlayView]:
    """Every open play (or `owner`'s), with its steps and account: three queries however many."""
    query = select(HealthPlay).where(col(HealthPlay.closed_at).is_(None))
    if owner is not None:
        query = query.where(HealthPlay.owner == owner)
    found = list(session.exec(query.order_by(col(HealthPlay.opened_at), col(HealthPlay.id))))
    ids = [p.id for p in found]
    steps: dict[int, list[HealthPlayStep]] = {}
    for step in session.exec(select(HealthPlayStep).where(col(HealthPlayStep.play_id).in_(ids))
                             .order_by(col(HealthPlayStep.play_id), col(HealthPlayStep.position))):
        steps.setdefault(step.play_id, []).append(step)
    accounts = {a.id: a for a in session.exec(
        select(Account).where(col(Account.id).in_({p.tenant_id for p in found})))}
    return [PlayView(p, steps.get(p.id or 0, []), accounts[p.tenant_id], zone) for p in found]


def open_of(session: Session, tenant: str) -> HealthPlay | None:
    return session.exec(select(HealthPlay).where(HealthPlay.tenant_id == tenant,
                                                 col(HealthPlay.closed_at).is_(None))).first()


def step_done(session: Session, view: PlayView, step_id: str, *, actor: str, now: datetime) -> HealthPlayStep:
    if view.play.closed_at is not None:
        raise InvalidInput(f"{view.ref} is closed ({view.play.outcome})")
    step = next((s for s in view.steps if s.step_id == step_id or str(s.position + 1) == step_id), None)
    if step is None:
        known = ", ".join(s.step_id for s in view.steps)
        raise NotFound(f"{view.ref} has no step {step_id!r} (its steps: {known})")
    if step.done_at is not None:
        raise InvalidInput(f"{view.ref}: {user(step.done_by)} already did “{step.title}”")
    step.done_at, step.done_by = now, actor
    session.add(step)
    audit.record(session, at=now, actor=actor, action="health.play.step_done",
                 subject=f"account:{view.play.tenant_id}",
                 after={"play": view.play.id, "step": step.step_id, "due_at": step.due_at,
                        "late": now > step.due_at})
    _refresh(session, view, now)
    return step


def close(session: Session, view: PlayView, outcome: str, note: str, *, actor: str, now: datetime) -> None:
    play = view.play
    if play.closed_at is not None:
        raise InvalidInput(f"{view.ref} is already closed ({play.outcome})")
    if outcome not in PLAY_OUTCOMES:
        raise InvalidInput(f"outcome: {outcome!r} is not one of {', '.join(PLAY_OUTCOMES)}")
    note = " ".join(note.split())
    if not note:
        raise InvalidInput("note: say in a few words what happened, e.g. \"renewed after the exec call\"")
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"note: {len(note)} characters; at most {MAX_NOTE}")
    play.closed_at, play.closed_by, play.outcome, play.note = now, actor, outcome, note
    session.add(play)
    open_steps = [s.step_id for s in view.steps if s.done_at is None]
    audit.record(session, at=now, actor=actor, action="health.play.closed",
                 subject=f"account:{play.tenant_id}",
                 after={"play": play.id, "outcome": outcome, "note": note, "open_steps": open_steps})
    _refresh(session, view, now)
    for person in play.escalated_to:
        outbox.enqueue(session, transport=CHAT, target=person, now=now,
                       key=f"health:play:{play.id}:closed:{person}",
                       payload={"message": card(view, now, for_owner=False).to_json()})


def _refresh(session: Session, view: PlayView, now: datetime) -> None:
    assert view.play.id is not None
    key = card_key(view.play.id)
    outbox.enqueue(session, transport=CHAT, target=view.play.owner, now=now, update_key=key,
                   lane=f"{CHAT}:{view.play.owner}:edit:{key}", supersede=True,
                   payload={"message": card(view, now).to_json()})


def remind(session: Session, timer: Timer, now: datetime, *, calendar: WorkingTime,
           every: timedelta, zone: ZoneInfo) -> str:
    """A reminder timer: "due soon", or overdue (again every `every` until done or closed)."""
    step = session.get(HealthPlayStep, int(timer.payload.get("step", 0)))
    if step is None:
        return "skipped: no such step"
    view = load(session, step.play_id, zone)
    if view.play.closed_at is not None:
        return "skipped: the play is closed"
    if step.done_at is not None:
        return "skipped: the step is done"
    stage = str(timer.payload.get("stage"))
    step.reminders += 1
    session.add(step)
    if stage == "overdue":
        session.add(Timer(kind=REMIND, due_at=calendar.add(now, every), created_at=now,
                          payload={"step": step.id, "stage": "overdue"}))
    outbox.enqueue(session, transport=CHAT, target=view.play.owner, now=now,
                   key=f"health:play:{view.play.id}:remind:{step.id}:{step.reminders}",
                   payload={"message": reminder(view, step, stage, now).to_json()})
    audit.record(session, at=now, actor=OPSLOOP, action="health.play.reminded",
                 subject=f"account:{view.play.tenant_id}",
                 after={"play": view.play.id, "step": step.step_id, "stage": stage, "n": step.reminders})
    return "fired"


def overdue(view: PlayView, now: datetime) -> list[HealthPlayStep]:
    return [s for s in view.steps if s.done_at is None and s.due_at <= now]

