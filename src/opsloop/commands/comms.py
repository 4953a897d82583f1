"""Customer notices in review and public updates: `/incident public`, `/incident update --public`,
the draft's Send / Edit / Skip buttons, and their forms."""

from __future__ import annotations

from opsloop.commands.args import ITEM_ID, Choice
from opsloop.commands.grammar import Args, Pos, Verb
from opsloop.errors import UsageError
from opsloop.loops.review import Review
from opsloop.messages import Reply, user
from opsloop.present.notices import edit_form, public_update_form
from opsloop.types import Kind

_ON_OFF = Choice(("on", "off"), "on or off")


class CommsCommands:
    def __init__(self, review: Review) -> None:
        self.review = review

    def verbs(self) -> list[Verb]:
        return [Verb("public", "show it on the public status page (on) or not (off)",
                     Pos("ref", ITEM_ID[Kind.INCIDENT]), Pos("public", _ON_OFF), run=self._public)]

    def _public(self, args: Args) -> Reply:
        public = args["public"] == "on"
        item = self.review.set_public(actor=args.actor, ref=args["ref"], public=public)
        return Reply(f"{item.ref} is {'now shown' if public else 'no longer shown'} on the public status page"
                     + (" (approved public updates only, no customer names)" if public else ""))

    def public_update(self, actor: str, ref: str, text: str) -> Reply:
        draft = self.review.public_update(actor=actor, ref=ref, text=text)
        who = ", ".join(user(p) for p in draft.posted_to) or "nobody (no one is allowed notice.approve)"
        return Reply(f"{ref.upper()}: public update drafted for review by {who}; "
                     "nothing reaches a customer until someone presses Send")

    def press(self, verb: str, value: str, actor: str) -> Reply:
        """The draft's buttons (`notice.send|edit|skip` with the draft id) and the card's Public update."""
        if verb == "compose":
            return Reply("Write a public update", form=public_update_form(value))
        if not value.isdigit():
            raise UsageError(f"{value!r} is not a notice draft")
        draft_id = int(value)
        if verb == "send":
            draft = self.review.send(actor=actor, draft_id=draft_id)
            return Reply(f"Sent: the {draft.event} notice (draft {draft.id}) goes to "
                         f"{', '.join(draft.tenants) or 'the status pages'} now")
        if verb == "skip":
            draft = self.review.skip(actor=actor, draft_id=draft_id)
            return Reply(f"Skipped: nobody is told draft {draft.id}")
        if verb == "edit":
            item, draft = self.review.draft_of(draft_id)
            return Reply("Edit the notice", form=edit_form(draft, item.ref))
        raise UsageError(f"unknown button notice.{verb}")

    def submit_edit(self, context: str, values: dict[str, str], actor: str) -> Reply:
        if not context.isdigit():
            raise UsageError("this form names no notice draft")
        draft = self.review.edit(actor=actor, draft_id=int(context), text=values.get("text", ""))
        return Reply(f"Draft {draft.id} saved; press Send in its message to send it")

    def submit_public(self, context: str, values: dict[str, str], actor: str) -> Reply:
        return self.public_update(actor, context, values.get("text", ""))
