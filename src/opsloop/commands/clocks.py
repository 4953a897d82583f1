"""`/incident pause|resume|update INC-n ...` (and /escalate), and the card's Pause / Resume button."""

from __future__ import annotations

from collections.abc import Callable

from opsloop.commands.args import COMMAND_OF, ITEM_ID
from opsloop.commands.grammar import Args, Flag, Pos, Rest, Verb
from opsloop.errors import UsageError
from opsloop.messages import Reply
from opsloop.sla.service import Sla
from opsloop.types import Kind


class ClockCommands:
    def __init__(self, sla: Sla, public: Callable[[str, str, str], Reply]) -> None:
        self.sla = sla
        self.public = public  # (actor, ref, text): a public update, drafted for review

    def verbs(self, kind: Kind) -> list[Verb]:
        ref = Pos("ref", ITEM_ID[kind])
        return [
            Verb("update", "a status update (meets the update target)"
                 + ("; --public: for customers, drafted for review" if kind is Kind.INCIDENT else ""),
                 ref, *([Flag("public")] if kind is Kind.INCIDENT else []),
                 Rest("text", required=True, label="what changed"), run=self.update),
            Verb("pause", "stop its SLA clocks (e.g. waiting on the customer)", ref, Rest("reason"),
                 run=self.pause),
            Verb("resume", "start its SLA clocks again", ref, run=self.resume),
        ]

    def pause(self, args: Args) -> Reply:
        reason = args["reason"]
        item = self.sla.pause(actor=args.actor, ref=args["ref"], reason=reason)
        return Reply(f"{item.ref}: clocks paused" + (f" ({reason})" if reason else "")
                     + f". Resume with `{COMMAND_OF[Kind(item.kind)]} resume {item.ref}`.")

    def resume(self, args: Args) -> Reply:
        item = self.sla.resume(actor=args.actor, ref=args["ref"])
        return Reply(f"{item.ref}: clocks running again")

    def update(self, args: Args) -> Reply:
        if args.get("public"):
            return self.public(args.actor, args["ref"], args["text"])
        item = self.sla.update(actor=args.actor, ref=args["ref"], text=args["text"])
        return Reply(f"{item.ref}: update posted")

    def press(self, verb: str, value: str, actor: str) -> Reply:
        """The card's `clock.pause` / `clock.resume` buttons."""
        if verb == "pause":
            item = self.sla.pause(actor=actor, ref=value, reason=None)
            return Reply(f"{item.ref}: clocks paused")
        if verb == "resume":
            item = self.sla.resume(actor=actor, ref=value)
            return Reply(f"{item.ref}: clocks running again")
        raise UsageError(f"unknown clock button {verb}")
