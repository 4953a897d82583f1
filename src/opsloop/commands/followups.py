"""`/incident followup INC-n "what" @owner due:14d [link:URL]` and `/followup list|show|close`."""

from __future__ import annotations

from opsloop.commands.args import DURATION, INCIDENT_ID, USER, Choice, Pattern
from opsloop.commands.grammar import Anywhere, Args, Command, Opt, Pos, Rest, Verb
from opsloop.errors import UsageError
from opsloop.messages import Form, FormField, Reply, escape
from opsloop.present.followups import card, list_line, when
from opsloop.reviews.followups import FollowUps
from opsloop.reviews.views import FollowUpView

FOLLOWUP_ID = Pattern(r"(?i:act)-[0-9]{1,9}", "ACT-n", "a follow-up id (like ACT-4)")
LINK = Pattern(r"https?://[^\s<>|\"']{1,490}", "URL", "an http(s) link")
_WHICH = Choice(("all", "mine", "overdue"), "a list (all, mine or overdue)")


class FollowUpCommands:
    def __init__(self, followups: FollowUps) -> None:
        self.followups = followups

    @property
    def zone(self) -> str:
        return self.followups.policy.timezone

    def incident_verbs(self) -> list[Verb]:
        return [Verb("followup", "a follow-up (ACT-n): what, its owner (default: you), due in working days "
                     "(default 14d), a link", Pos("ref", INCIDENT_ID),
                     Rest("what", required=True, quoted=True, label="what to do"), Anywhere("owner", USER),
                     Opt("due", DURATION), Opt("link", LINK), run=self.create)]

    def command(self) -> Command:
        ref = Pos("ref", FOLLOWUP_ID)
        return Command("/followup", "follow-ups from incidents and their reviews", [
            Verb("list", "open follow-ups, soonest due first (yours, or the overdue ones)",
                 Anywhere("which", _WHICH), run=self.listing),
            Verb("show", "one follow-up", ref, run=self.show),
            Verb("close", "close it, saying what was done (its owner, a commander or an admin)", ref,
                 Rest("note", required=True), aliases=("done",), run=self.close),
        ], default="list",
            footer='Make one with `/incident followup INC-n "what" @owner due:14d [link:URL]`.')

    def create(self, args: Args) -> Reply:
        view = self.followups.create(actor=args.actor, ref=args["ref"], what=args["what"],
                                     owner=args["owner"], due_in=args["due"], link=args["link"])
        found = view.followup
        return Reply(f"Made {found.ref} on {view.item_ref} for <@{found.owner}>: {escape(found.what)} — due "
                     f"{when(found.due_at, self.zone)}.",
                     message=card(view, self.followups.clock.now(), self.zone))

    def listing(self, args: Args) -> Reply:
        which = args["which"] or "all"
        views = self.followups.listing(actor=args.actor, which=which)  # type: ignore[arg-type]
        if not views:
            return Reply({"mine": "You own no open follow-ups.", "overdue": "No open follow-up is overdue."}
                         .get(which, "No open follow-ups."))
        now = self.followups.clock.now()
        title = {"mine": "Your open follow-ups", "overdue": "Overdue follow-ups"}.get(
            which, "Open follow-ups")
        return Reply(f"{title} ({len(views)}), soonest due first:\n"
                     + "\n".join(list_line(v, now, self.zone) for v in views))

    def show(self, args: Args) -> Reply:
        view = self.followups.show(args["ref"])
        message = card(view, self.followups.clock.now(), self.zone,
                       for_owner=view.followup.owner == args.actor)
        return Reply(message.text, message=message)

    def close(self, args: Args) -> Reply:
        return self._closed(self.followups.close(actor=args.actor, ref=args["ref"], note=args["note"]))

    def _closed(self, view: FollowUpView) -> Reply:
        return Reply(f"Closed {view.ref}.", message=card(view, self.followups.clock.now(), self.zone))

    # ------------------------------------------------------------------ the Close… button and its form

    def press(self, verb: str, value: str, actor: str) -> Reply:
        if verb != "close":
            raise UsageError(f"unknown button followup.{verb}")
        view = self.followups.show(value)
        return Reply(f"Close {view.ref}", form=Form(
            id="followup.close", title=f"Close {view.ref}", context=view.ref,
            usage=f'/followup close {view.ref} "what was done"', submit_label="Close",
            fields=[FormField("note", "What was done", multiline=True,
                              placeholder="e.g. replica lag alert added, see the PR")]))

    def submit_close(self, context: str, values: dict[str, str], actor: str) -> Reply:
        return self._closed(self.followups.close(actor=actor, ref=context, note=values.get("note", "")))
