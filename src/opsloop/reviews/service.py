"""Post-incident reviews: drafted from the record, edited in versions, owned and due, then published.

`/incident review INC-n` drafts one (or shows the one there is); resolving an item of a severity in
`reviews.required_for` drafts it by itself (`on_changed`, in the resolution's transaction). A draft
holds the record's facts (`reviews.record`) and sections for people; every save is a new
`ReviewVersion`. The owner (`first_owner`: a person who worked the item, else nobody yet, and the
people who may assign it are told) has a due date on `reviews.calendar` (`reviews.due`) and
reminders by durable timer. draft -> in review -> published;
a published review no longer changes and the SHA-256 of its canonical JSON is in the audit chain
(`review.published`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.bus import Bus
from opsloop.errors import InvalidInput, NotFound
from opsloop.events import ItemChanged, ReviewChanged, ReviewReminded
from opsloop.loops.service import FeedbackLoops
from opsloop.models import WorkItem
from opsloop.reviews import record
from opsloop.reviews.followups import FollowUps
from opsloop.reviews.models import (
    DRAFT,
    IN_REVIEW,
    MAX_SECTION,
    PUBLISHED,
    SECTIONS,
    Review,
    ReviewVersion,
)
from opsloop.reviews.ownership import UNASSIGNED, arm, first_owner
from opsloop.reviews.record import canonical
from opsloop.reviews.views import ReviewView
from opsloop.reviews.workdays import calendar_of, count_reminder, due
from opsloop.service import Service
from opsloop.timers.models import Timer
from opsloop.types import OPSLOOP, Kind
from opsloop.workitems import WorkItems, find, kind_of

PEOPLE_SECTIONS = tuple(key for key, _ in SECTIONS)


Doc = dict[str, Any]


class Changed(NamedTuple):
    """What a change to a review did: `what` (the audit action is `review.WHAT`) and its audit record."""

    what: str
    after: dict[str, Any]
    before: dict[str, Any] | None = None


Change = Callable[[Session, Review, WorkItem, Doc, datetime], Changed]


@dataclass(eq=False)
class Reviews(Service):
    items: WorkItems
    followups: FollowUps
    loops: FeedbackLoops
    bus: Bus

    # ------------------------------------------------------------------ drafting

    def draft(self, *, actor: str, ref: str) -> tuple[ReviewView, bool]:
        """Draft the review of `ref` (True), or the one it has (False)."""
        if kind_of(ref) not in (Kind.INCIDENT, Kind.ESCALATION):
            raise InvalidInput(f"{ref.upper()}: reviews are of incidents and escalations")
        with self.db.transaction() as session:
            item = find(session, ref)
            existing = self._of(session, item)
            if existing is not None:
                return self._view(session, existing, item), False
        self.authz.require(
            actor, "review.draft", subject=item.ref, owners=(item.owner,), owner_is="owning the item"
        )
        with self.db.transaction() as session:
            audit.lock_chain(session)
            item = self.items.lock(session, ref)
            existing = self._of(session, item)
            if existing is not None:  # drafted meanwhile (a resolve, a second click)
                return self._view(session, existing, item), False
            review = self.draft_in(session, item, actor=actor, now=self.clock.now())
            return self._view(session, review, item), True

    def assigners(self) -> list[str]:
        """The people who may give a review its owner (`review.publish`: commander and admin by default)."""
        people: list[str] = []
        for role in self.policy.roles_allowed("review.publish"):
            people += [p for p in self.authz.people(role) if p not in people]
        return people

    def draft_in(
        self, session: Session, item: WorkItem, *, actor: str, now: datetime, by: str | None = None
    ) -> Review:
        """Draft in the caller's transaction (which holds the audit chain); `by`: the person whose change
        drafted it (the resolver), when not `actor`."""
        assert item.id is not None
        owner = first_owner(session, item, by=by or actor)
        review = Review(
            work_item_id=item.id,
            owner=owner,
            drafted_at=now,
            drafted_by=actor,
            due_at=due(calendar_of(self.policy), now, self.policy.reviews.due),
        )
        session.add(review)
        session.flush()
        doc = {**record.gather(session, item, now), **{k: "" for k in PEOPLE_SECTIONS if k != "summary"}}
        session.add(
            ReviewVersion(review_id=review.id or 0, version=1, saved_at=now, saved_by=actor, content=doc)
        )
        arm(session, review, remind_before=self.policy.reviews.remind_before, now=now)
        audit.record(session, at=now, actor=actor, action="review.drafted", subject=item.ref,
                     after={"owner": owner, "due_at": review.due_at, "version": 1})
        self.announce(session, review, item, actor, "drafted", now, by=by or "")
        if owner == UNASSIGNED:
            self._remind(session, review, item, "drafted", now)
        return review

    def _remind(self, session: Session, review: Review, item: WorkItem, stage: str, now: datetime) -> None:
        """Its owner is reminded; nobody owns it: each person who may assign it is asked instead."""
        assigners = () if review.owner != UNASSIGNED else tuple(self.assigners())
        self.bus.publish(session, ReviewReminded(at=now, item=item, review=review, stage=stage,
                                                 reminders=review.reminders, assigners=assigners))

    def on_changed(self, session: Session, event: ItemChanged) -> None:
        """An item of a severity in `reviews.required_for` is resolved: its review is drafted."""
        item = event.item
        if (
            event.action != "resolve"
            or item.kind not in (Kind.INCIDENT, Kind.ESCALATION)
            or item.severity not in self.policy.reviews.required_for
            or self._of(session, item) is not None
        ):
            return
        self.draft_in(session, item, actor=OPSLOOP, now=event.at, by=event.actor)

    # ------------------------------------------------------------------ editing and its lifecycle

    def save(self, *, actor: str, ref: str, values: Mapping[str, str]) -> ReviewView:
        """A new version with the people's sections from `values` (the others kept)."""
        unknown = sorted(set(values) - set(PEOPLE_SECTIONS))
        if unknown:
            raise InvalidInput(f"{', '.join(unknown)}: not a section of a review")
        for key, text in values.items():
            if len(text) > MAX_SECTION:
                raise InvalidInput(f"{key}: {len(text)} characters; at most {MAX_SECTION}")

        def change(session: Session, review: Review, item: WorkItem, doc: Doc, now: datetime) -> Changed:
            new = {**doc, **{k: v.strip() for k, v in values.items()}}
            if new == doc:
                raise InvalidInput("nothing changed")
            review.version += 1
            session.add(ReviewVersion(review_id=review.id or 0, version=review.version, saved_at=now,
                                      saved_by=actor, content=new))
            return Changed("saved", {"version": review.version,
                                     "sections": sorted(k for k in values if new[k] != doc.get(k))})

        return self._change(actor, ref, "review.edit", change)

    def submit(self, *, actor: str, ref: str) -> ReviewView:
        def change(session: Session, review: Review, item: WorkItem, doc: Doc, now: datetime) -> Changed:
            if review.state != DRAFT:
                raise InvalidInput(f"the review of {item.ref} is {review.state}, not a draft")
            review.state, review.submitted_at = IN_REVIEW, now
            return Changed("submitted", {"version": review.version})

        return self._change(actor, ref, "review.edit", change)

    def publish(self, *, actor: str, ref: str) -> ReviewView:
        def change(session: Session, review: Review, item: WorkItem, doc: Doc, now: datetime) -> Changed:
            if review.state != IN_REVIEW:
                raise InvalidInput(f"the review of {item.ref} is a {review.state}: submit it for review "
                                   "first")
            missing = [title for key, title in SECTIONS[:4] if not (doc.get(key) or "").strip()]
            if missing:
                raise InvalidInput(f"write {', '.join(missing)} before publishing (Edit…)")
            review.state, review.published_at, review.published_by = PUBLISHED, now, actor
            review.sha256 = hashlib.sha256(canonical(doc, self.followups.of_item(session, item))).hexdigest()
            return Changed("published", {"version": review.version, "sha256": review.sha256})

        return self._change(actor, ref, "review.publish", change)

    def set_owner(self, *, actor: str, ref: str, owner: str) -> ReviewView:
        def change(session: Session, review: Review, item: WorkItem, doc: Doc, now: datetime) -> Changed:
            before, review.owner = review.owner, owner
            return Changed("owner", {"owner": owner}, before={"owner": before})

        return self._change(actor, ref, "review.publish", change)

    def _change(self, actor: str, ref: str, permission: str, change: Change) -> ReviewView:
        """Make `change` to the review of `ref` in a transaction of its own, audited as `review.WHAT`
        and announced (`ReviewChanged`); a published review no longer changes."""
        with self.db.transaction() as session:
            item = find(session, ref)
            review = self._of(session, item)
            if review is None:
                raise NotFound(f"{item.ref} has no review yet: `/incident review {item.ref}` drafts it")
        self.authz.require(
            actor, permission, subject=item.ref, owners=(review.owner,), owner_is="owning the review"
        )
        now = self.clock.now()
        with self.db.transaction() as session:
            audit.lock_chain(session)
            item = self.items.lock(session, ref)
            review = session.exec(
                select(Review).where(Review.work_item_id == item.id).with_for_update()
            ).one()
            if review.state == PUBLISHED:
                raise InvalidInput(
                    f"the review of {item.ref} is published (sha256 {review.sha256}): it no longer changes"
                )
            done = change(session, review, item, self._doc(session, review), now)
            audit.record(session, at=now, actor=actor, action=f"review.{done.what}", subject=item.ref,
                         before=done.before, after=done.after)
            session.add(review)
            session.flush()
            self.announce(session, review, item, actor, done.what, now)
            return self._view(session, review, item)

    # ------------------------------------------------------------------ reading

    def get(self, ref: str) -> ReviewView:
        with self.db.transaction() as session:
            item = find(session, ref)
            review = self._of(session, item)
            if review is None:
                raise NotFound(f"{item.ref} has no review yet: `/incident review {item.ref}` drafts it")
            return self._view(session, review, item)

    def versions(self, ref: str) -> list[ReviewVersion]:
        view = self.get(ref)
        with self.db.transaction() as session:
            return list(
                session.exec(
                    select(ReviewVersion)
                    .where(ReviewVersion.review_id == view.review.id)
                    .order_by(col(ReviewVersion.version))
                )
            )

    def overdue(self, session: Session, now: datetime) -> list[tuple[Review, str]]:
        """Reviews not yet published past their due date, with their item's ref (the digest's list)."""
        rows = session.exec(
            select(Review, WorkItem.ref)
            .join(WorkItem, col(WorkItem.id) == col(Review.work_item_id))
            .where(col(Review.state) != PUBLISHED, col(Review.due_at) <= now)
            .order_by(col(Review.due_at))
            .limit(50)
        ).all()
        return [(r, ref) for r, ref in rows]

    def _of(self, session: Session, item: WorkItem) -> Review | None:
        return session.exec(select(Review).where(Review.work_item_id == item.id)).first()

    def _doc(self, session: Session, review: Review) -> dict[str, Any]:
        row = session.exec(
            select(ReviewVersion).where(
                ReviewVersion.review_id == review.id, ReviewVersion.version == review.version
            )
        ).one()
        return dict(row.content)

    def _view(self, session: Session, review: Review, item: WorkItem) -> ReviewView:
        return ReviewView(review, item, self._doc(session, review), self.followups.of_item(session, item))

    def announce(
        self, session: Session, review: Review, item: WorkItem, actor: str, what: str, now: datetime,
        by: str = "",
    ) -> None:
        view = self._view(session, review, item)
        self.bus.publish(
            session,
            ReviewChanged(
                at=now,
                item=item,
                review=review,
                what=what,
                actor=actor,
                doc=view.doc,
                followups=tuple(view.followups),
                by=by,
            ),
        )

    # ------------------------------------------------------------------ the reminder timer

    def on_remind(self, session: Session, timer: Timer, now: datetime) -> str:
        """`review.remind`: due soon, or overdue (again every `remind_every` until published)."""
        review = session.get(Review, int(timer.payload.get("review", 0)))
        if review is None:
            return "skipped: no such review"
        if review.state == PUBLISHED:
            return "skipped: published"
        item = session.get(WorkItem, review.work_item_id)
        assert item is not None
        stage = count_reminder(session, review, timer, key="review", calendar=calendar_of(self.policy),
                               every=self.policy.reviews.remind_every, now=now)
        self._remind(session, review, item, stage, now)
        audit.record(session, at=now, actor=OPSLOOP, action="review.reminded", subject=item.ref,
                     after={"stage": stage, "n": review.reminders, "owner": review.owner})
        return "fired"
