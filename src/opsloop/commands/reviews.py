"""`/incident review INC-n [edit|submit|publish] [owner:@user] [section:NAME "text"]`, buttons, the form."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from opsloop.commands.args import INCIDENT_ID, USER, Choice
from opsloop.commands.grammar import Anywhere, Args, Opt, Pos, Rest, Verb
from opsloop.errors import UsageError
from opsloop.messages import Reply, user
from opsloop.present.reviews import edit_form, thread_message
from opsloop.reviews import sharing
from opsloop.reviews.models import SECTIONS
from opsloop.reviews.service import Reviews
from opsloop.reviews.views import ReviewView

_STEP = Choice(("edit", "submit", "publish", "share"), "a step (edit, submit, publish or share)")
_SECTION = Choice(tuple(key for key, _ in SECTIONS), "a section")


class ReviewCommands:
    def __init__(self, reviews: Reviews) -> None:
        self.reviews = reviews

    def incident_verbs(self) -> list[Verb]:
        return [
            Verb(
                "review",
                "its post-incident review: drafted from the record (or shown); `edit` opens the "
                'form, `section:NAME "text"` writes one section, `submit` for review, `publish` it, `share` '
                "its customer account with each affected customer",
                Pos("ref", INCIDENT_ID),
                Anywhere("step", _STEP),
                Opt("owner", USER),
                Opt("section", _SECTION),
                Rest("text", quoted=True),
                run=self.review,
            )
        ]

    def _reply(self, text: str, view: ReviewView) -> Reply:
        zone = ZoneInfo(self.reviews.policy.timezone)
        return Reply(text, message=thread_message(view.review, view.doc, view.followups, zone))

    def review(self, args: Args) -> Reply:
        ref, step, actor = args["ref"], args["step"], args.actor
        if args["section"] is not None or args["text"] is not None:
            if args["section"] is None or args["text"] is None:
                raise UsageError(
                    f'write a section as `/incident review {ref} section:went_well "text"` '
                    f"(sections: {', '.join(k for k, _ in SECTIONS)})"
                )
            view = self.reviews.save(actor=actor, ref=ref, values={args["section"]: args["text"]})
            return self._reply(f"Saved version {view.review.version} of the review of {view.ref}.", view)
        if args["owner"] is not None:
            view = self.reviews.set_owner(actor=actor, ref=ref, owner=args["owner"])
            return self._reply(f"<@{view.review.owner}> owns the review of {view.ref} now.", view)
        if step is None:
            view, drafted = self.reviews.draft(actor=actor, ref=ref)
            said = "Drafted" if drafted else "Here is"
            return self._reply(
                f"{said} the review of {view.ref} ({view.review.state}, version "
                f"{view.review.version}); the document is in its thread.",
                view,
            )
        return self.press(step, ref, actor)

    # ------------------------------------------------------------------ buttons and the form

    def press(self, verb: str, value: str, actor: str) -> Reply:
        if verb == "edit":
            view = self.reviews.get(value)
            if view.review.state == "published":
                raise UsageError(f"the review of {view.ref} is published: it no longer changes")
            return Reply(f"Edit the review of {view.ref}", form=edit_form(view.ref, view.doc))
        if verb == "submit":
            view = self.reviews.submit(actor=actor, ref=value)
            return self._reply(f"The review of {view.ref} is in review.", view)
        if verb == "publish":
            view = self.reviews.publish(actor=actor, ref=value)
            return self._reply(f"Published the review of {view.ref} (sha256 {view.review.sha256}).", view)
        if verb == "share":
            view, draft = sharing.share(self.reviews, actor=actor, ref=value)
            tenants = f"{len(draft.tenants)} customer(s): {', '.join(draft.tenants)}"
            if draft.status == "sent":
                return self._reply(f"Sent the customer account of {view.ref} to {tenants}; each reads only "
                                   "of itself.", view)
            who = ", ".join(user(p) for p in draft.posted_to) or "nobody (no one is allowed notice.approve)"
            return self._reply(f"Drafted the customer account of {view.ref} for {tenants}, for review by "
                               f"{who}; nothing reaches a customer until someone presses Send (each reads "
                               "only of itself).", view)
        raise UsageError(f"unknown button review.{verb}")

    def submit_edit(self, context: str, values: dict[str, str], actor: str) -> Reply:
        view = self.reviews.save(actor=actor, ref=context, values=values)
        return self._reply(f"Saved version {view.review.version} of the review of {view.ref}.", view)
