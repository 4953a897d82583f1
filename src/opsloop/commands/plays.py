"""/health take|plays|play|done|close|report, and the play buttons and the close form."""

from __future__ import annotations

from opsloop.commands.args import Choice, Pattern
from opsloop.commands.grammar import Anywhere, Args, Opt, Pos, Rest, Verb
from opsloop.errors import UsageError
from opsloop.health.models import PLAY_OUTCOMES
from opsloop.health.play_service import Plays
from opsloop.health.plays import PlayView
from opsloop.health.present import report_message
from opsloop.health.present_plays import card, list_line
from opsloop.messages import Form, FormField, Reply, escape

PLAY = Pattern(r"(?:play-)?[0-9]{1,9}", "PLAY-n", "a play (PLAY-n)", lower=True)
PLAY_STEP = Pattern(r"[a-z0-9][a-z0-9_]{0,63}", "STEP", "a step (its id or number)")
PLAYBOOK = Pattern(r"[a-z0-9][a-z0-9_.-]{0,99}", "ID", "a playbook id (e.g. executive-outreach)")


class PlayCommands:
    def __init__(self, plays: Plays) -> None:
        self.plays = plays
        self.health = plays.health

    def verbs(self) -> list[Verb]:
        play = Pos("play", PLAY)
        return [
            Verb("take", "open a play: the playbook's steps with due dates, reminders to you",
                 Rest("account", required=True, label="ACCOUNT"), Opt("playbook", PLAYBOOK), run=self.take),
            Verb("plays", "open plays (yours, or the overdue ones)",
                 Anywhere("which", Choice(("all", "mine", "overdue"), "a list (all, mine or overdue)")),
                 run=self.listing),
            Verb("play", "a play's checklist", play, run=self.show),
            Verb("done", "mark a step done (its id or number)", play, Pos("step", PLAY_STEP), run=self.done),
            Verb("close", "close it with an outcome and a note", play,
                 Pos("outcome", Choice(PLAY_OUTCOMES, "an outcome")), Rest("note", required=True),
                 run=self.close),
            Verb("report", "retention (NRR), whether the score foresaw churn, which playbooks work",
                 run=self.report),
        ]

    def _now_card(self, view: PlayView) -> Reply:
        return Reply(card(view, self.health.clock.now()).text, message=card(view, self.health.clock.now(),
                                                                             for_owner=False))

    def take(self, args: Args) -> Reply:
        return self._opened(self.plays.take(actor=args.actor, account=args["account"],
                                            playbook=args["playbook"]))

    def _opened(self, view: PlayView) -> Reply:
        now = self.health.clock.now()
        text = (f"Opened {view.ref} for {escape(view.account.name)}: {view.play.playbook_id} "
                f"{view.play.playbook_version}, {len(view.steps)} steps; reminders come to you by DM.")
        if view.play.escalated_to:
            told = ", ".join(f"<@{p}>" for p in view.play.escalated_to)
            text += f" Executive escalation: {told} told."
        if view.warning:
            text += f" ⚠️ {view.warning}."
        return Reply(text, message=card(view, now, for_owner=False))

    def listing(self, args: Args) -> Reply:
        which, actor = args["which"] or "all", args.actor
        views = self.plays.listing(actor=actor, which=which)  # type: ignore[arg-type]
        if not views:
            return Reply({"mine": "You have no open plays.", "overdue": "No open play is overdue."}.get(
                which, "No open plays."))
        now = self.health.clock.now()
        title = {"mine": "Your open plays", "overdue": "Overdue plays"}.get(which, "Open plays")
        lines = "\n".join(list_line(v, now) for v in views)
        return Reply(f"{title} ({len(views)}), most pressing first:\n{lines}")

    def show(self, args: Args) -> Reply:
        return self._now_card(self.plays.show(actor=args.actor, ref=args["play"]))

    def done(self, args: Args) -> Reply:
        return self._done(args.actor, args["play"], args["step"])

    def _done(self, actor: str, play: str, step: str) -> Reply:
        view = self.plays.done(actor=actor, ref=play, step=step)
        return Reply(f"Noted on {view.ref}.", message=card(view, self.health.clock.now(), for_owner=False))

    def close(self, args: Args) -> Reply:
        return self._close(args.actor, args["play"], args["outcome"], args["note"])

    def _close(self, actor: str, play: str, outcome: str, note: str) -> Reply:
        view = self.plays.close(actor=actor, ref=play, outcome=outcome, note=note)
        return Reply(f"Closed {view.ref}: {view.play.outcome}.", message=card(view, self.health.clock.now(),
                                                                              for_owner=False))

    def report(self, args: Args) -> Reply:
        found = self.health.report(actor=args.actor)
        message = report_message(found)
        return Reply(message.text, message=message)

    # ------------------------------------------------------------------ buttons and the form

    def press(self, verb: str, value: str, actor: str) -> Reply | None:
        """`health.take` (a prompt id), `health.step` (`PLAY:STEP`), `health.close` (a play id)."""
        if verb == "take":
            return self._opened(self.plays.take(actor=actor, prompt_id=value))
        if verb == "step":
            play, _, step = value.partition(":")
            return self._done(actor, play, step)
        if verb == "close":
            view = self.plays.show(actor=actor, ref=value)
            return Reply(f"Close {view.ref}", form=Form(
                id="health.close", title=f"Close {view.ref}", context=str(view.play.id),
                usage=f'/health close {view.ref} OUTCOME "note"', submit_label="Close",
                fields=[FormField("outcome", "Outcome", options=list(PLAY_OUTCOMES)),
                        FormField("note", "What happened", multiline=True,
                                  placeholder="e.g. renewed after the executive call")]))
        return None

    def submit_close(self, context: str, values: dict[str, str], actor: str) -> Reply:
        if not values.get("outcome"):
            raise UsageError("outcome: pick one")
        return self._close(actor, context, values["outcome"], values.get("note", ""))
