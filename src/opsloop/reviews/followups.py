"""Follow-ups (`ACT-n`): the work a review asks for, owned, due on the business calendar, reminded, closed.

`/incident followup INC-n "what" @owner due:14d [link:URL]` makes one on an incident (or an
escalation): its owner is told by DM, and durable timers remind them `remind_before` it is due and
every `remind_every` once it is overdue, until it is closed with a note (`/followup close ACT-n
"note"`). A follow-up carries its item's theme (the `theme:` label, else the `service` label, else
the runbook), so a later item on that theme can say it recurred after the follow-ups were closed.
Every change is audited (`followup.created|reminded|closed`) and published (`FollowUpCreated`,
`FollowUpReminded`, `FollowUpClosed`) for the item's timeline, thread and owner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import update
from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.bus import Bus
from opsloop.errors import InvalidInput, NotFound
from opsloop.events import FollowUpClosed, FollowUpCreated, FollowUpReminded
from opsloop.messages import user
from opsloop.models import Counter, WorkItem
from opsloop.reviews.models import FOLLOWUP_COUNTER, FollowUp
from opsloop.reviews.themes import theme_of
from opsloop.reviews.views import FollowUpView
from opsloop.reviews.workdays import calendar_of, count_reminder, due
from opsloop.service import Service
from opsloop.timers.models import Timer
from opsloop.types import OPSLOOP, Kind
from opsloop.workitems import WorkItems, find, kind_of

REMIND = "followup.remind"  # the timer kind: payload {followup: id, stage: soon | overdue}
MAX_WHAT = 500
MAX_NOTE = 1000
MAX_LISTED = 50
_LINK = re.compile(r"^https?://[^\s<>|\"']{1,490}$")
_REF = re.compile(r"^ACT-([0-9]{1,9})$", re.IGNORECASE)

Which = Literal["all", "mine", "overdue"]


@dataclass(eq=False)
class FollowUps(Service):
    items: WorkItems
    bus: Bus

    # ------------------------------------------------------------------ making and closing

    def create(self, *, actor: str, ref: str, what: str, owner: str | None = None,
               due_in: timedelta | None = None, link: str | None = None) -> FollowUpView:
        """A follow-up on the work item `ref`, owned by `owner` (default: `actor`)."""
        kind = kind_of(ref)
        if kind not in (Kind.INCIDENT, Kind.ESCALATION):
            raise InvalidInput(f"{ref.upper()} is an {kind.value}: follow-ups come from incidents and "
                               "escalations")
        what = " ".join(what.split())
        if not what:
            raise InvalidInput('say what is to be done, in quotes: "add a replica lag alert"')
        if len(what) > MAX_WHAT:
            raise InvalidInput(f"what: {len(what)} characters; at most {MAX_WHAT}")
        if link is not None and not _LINK.fullmatch(link):
            raise InvalidInput(f"link: {link[:80]!r} is no http(s) address")
        with self.db.transaction() as session:
            item = find(session, ref)
        self.authz.require(actor, "followup.create", subject=item.ref, owners=(item.owner,),
                           owner_is="owning the item")
        now = self.clock.now()
        with self.db.transaction() as session:
            audit.lock_chain(session)
            item = self.items.lock(session, ref)
            assert item.id is not None
            number = session.exec(
                update(Counter).where(col(Counter.name) == FOLLOWUP_COUNTER)
                .values(value=col(Counter.value) + 1).returning(col(Counter.value))
            ).one()[0]
            theme = theme_of(session, item)
            found = FollowUp(ref=f"ACT-{number}", number=number, work_item_id=item.id, what=what,
                             owner=owner or actor, link=link, themes=[theme] if theme else [],
                             created_by=actor, created_at=now, due_at=due(
                                 calendar_of(self.policy), now, due_in or self.policy.reviews.followup_due))
            session.add(found)
            session.flush()
            self._arm(session, found, now)
            audit.record(session, at=now, actor=actor, action="followup.created", subject=found.ref,
                         after={"item": item.ref, "what": what, "owner": found.owner, "due_at": found.due_at,
                                "link": link, "themes": found.themes})
            view = FollowUpView(found, item.ref, item.title)
            self.bus.publish(session, FollowUpCreated(at=now, item=item, followup=found, actor=actor))
        return view

    def _arm(self, session: Session, found: FollowUp, now: datetime) -> None:
        soon = found.due_at - self.policy.reviews.remind_before
        if soon > now:
            session.add(Timer(kind=REMIND, due_at=soon, created_at=now, work_item_id=found.work_item_id,
                              payload={"followup": found.id, "stage": "soon"}))
        session.add(Timer(kind=REMIND, due_at=found.due_at, created_at=now, work_item_id=found.work_item_id,
                          payload={"followup": found.id, "stage": "overdue"}))

    def close(self, *, actor: str, ref: str, note: str) -> FollowUpView:
        """Close it with a note saying what was done (its owner, or a commander or admin)."""
        note = " ".join(note.split())
        if not note:
            raise InvalidInput('note: say what was done, e.g. "alert added, see the PR"')
        if len(note) > MAX_NOTE:
            raise InvalidInput(f"note: {len(note)} characters; at most {MAX_NOTE}")
        view = self.show(ref)
        self.authz.require(actor, "followup.close", subject=view.ref, owners=(view.followup.owner,),
                           owner_is="owning it")
        now = self.clock.now()
        with self.db.transaction() as session:
            audit.lock_chain(session)
            found = self._find(session, ref, lock=True)
            if found.closed_at is not None:
                raise InvalidInput(f"{found.ref} was closed by {user(found.closed_by)}: {found.note}")
            found.closed_at, found.closed_by, found.note = now, actor, note
            session.add(found)
            item = session.get(WorkItem, found.work_item_id)
            assert item is not None
            audit.record(session, at=now, actor=actor, action="followup.closed", subject=found.ref,
                         after={"item": item.ref, "note": note, "late": now > found.due_at})
            self.bus.publish(session, FollowUpClosed(at=now, item=item, followup=found, actor=actor))
            return FollowUpView(found, item.ref, item.title)

    # ------------------------------------------------------------------ reading

    def show(self, ref: str) -> FollowUpView:
        with self.db.transaction() as session:
            found = self._find(session, ref)
            item = session.get(WorkItem, found.work_item_id)
            assert item is not None
            return FollowUpView(found, item.ref, item.title)

    def listing(self, *, actor: str, which: Which) -> list[FollowUpView]:
        """Open follow-ups, soonest due first: everyone's, `mine`, or the `overdue` ones."""
        now = self.clock.now()
        with self.db.transaction() as session:
            query = (select(FollowUp, WorkItem).join(WorkItem, col(WorkItem.id) == col(FollowUp.work_item_id))
                     .where(col(FollowUp.closed_at).is_(None)))
            if which == "mine":
                query = query.where(FollowUp.owner == actor)
            if which == "overdue":
                query = query.where(col(FollowUp.due_at) <= now)
            rows = session.exec(query.order_by(col(FollowUp.due_at), col(FollowUp.id))
                                .limit(MAX_LISTED)).all()
            return [FollowUpView(f, i.ref, i.title) for f, i in rows]

    def of_item(self, session: Session, item: WorkItem) -> list[FollowUp]:
        return list(session.exec(select(FollowUp).where(FollowUp.work_item_id == item.id)
                                 .order_by(col(FollowUp.number))))

    def overdue(self, session: Session, now: datetime) -> list[tuple[FollowUp, str]]:
        """Open follow-ups past their due date, with their item's ref (the digest's list)."""
        rows = session.exec(select(FollowUp, WorkItem.ref).join(WorkItem, col(WorkItem.id) == col(
            FollowUp.work_item_id)).where(col(FollowUp.closed_at).is_(None), col(FollowUp.due_at) <= now)
            .order_by(col(FollowUp.due_at)).limit(MAX_LISTED)).all()
        return [(f, r) for f, r in rows]

    def _find(self, session: Session, ref: str, *, lock: bool = False) -> FollowUp:
        match = _REF.fullmatch(ref.strip())
        if match is None:
            raise InvalidInput(f"{ref!r} is not a follow-up id (like ACT-4)")
        query = select(FollowUp).where(FollowUp.number == int(match.group(1)))
        found = session.exec(query.with_for_update() if lock else query).first()
        if found is None:
            raise NotFound(f"no follow-up ACT-{int(match.group(1))}")
        return found

    # ------------------------------------------------------------------ the reminder timer

    def on_remind(self, session: Session, timer: Timer, now: datetime) -> str:
        """`followup.remind`: due soon, or overdue (again every `remind_every` until closed)."""
        found = session.get(FollowUp, int(timer.payload.get("followup", 0)))
        if found is None:
            return "skipped: no such follow-up"
        if found.closed_at is not None:
            return "skipped: closed"
        item = session.get(WorkItem, found.work_item_id)
        assert item is not None
        stage = count_reminder(session, found, timer, key="followup", calendar=calendar_of(self.policy),
                               every=self.policy.reviews.remind_every, now=now)
        audit.record(session, at=now, actor=OPSLOOP, action="followup.reminded", subject=found.ref,
                     after={"stage": stage, "n": found.reminders, "owner": found.owner})
        self.bus.publish(session, FollowUpReminded(at=now, item=item, followup=found, stage=stage,
                                                   reminders=found.reminders))
        return "fired"
