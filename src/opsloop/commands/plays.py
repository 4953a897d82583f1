"""/health take|plays|play|done|close|report, and the play buttons and the close form."""

from __future__ import annotations

from opsloop.commands.parse import sort_words
from opsloop.errors import UsageError
from opsloop.health.models import PLAY_OUTCOMES
from opsloop.health.play_service import Plays
from opsloop.health.plays import PlayView
from opsloop.health.present import report_message
from opsloop.health.present_plays import card, list_line
from opsloop.messages import Form, FormField, Reply, escape

PLAYS_HELP = """\
• `/health take ACCOUNT [playbook:ID]` — open a play: the playbook's steps with due dates, reminders to you
• `/health plays [mine|overdue]` — open plays (yours, or the overdue ones)
• `/health play PLAY-n` — a play's checklist
• `/health done PLAY-n STEP` — mark a step done (its id or number)
• `/health close PLAY-n OUTCOME "note"` — close it: saved, churned, contracted, expanded or not-a-risk
• `/health report` — retention (NRR), whether the score foresaw churn, which playbooks work"""


class PlayCommands:
    def __init__(self, plays: Plays) -> None:
        self.plays = plays
        self.health = plays.health
        self.verbs = {"take": self.take, "plays": self.listing, "play": self.show, "done": self.done,
                      "close": self.close, "report": self.report}

    def _now_card(self, view: PlayView) -> Reply:
        return Reply(card(view, self.health.clock.now()).text, message=card(view, self.health.clock.now(),
                                                                             for_owner=False))

    def take(self, words: list[str], actor: str) -> Reply:
        sorted_words = sort_words(words, options={"playbook"})
        if not sorted_words.text:
            raise UsageError("usage: /health take ACCOUNT [playbook:ID]")
        view = self.plays.take(actor=actor, account=" ".join(sorted_words.text),
                               playbook=sorted_words.option("playbook"))
        return self._opened(view)

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

    def listing(self, words: list[str], actor: str) -> Reply:
        which = words[0].lower() if words else "all"
        if which not in ("all", "mine", "overdue") or len(words) > 1:
            raise UsageError("usage: /health plays [mine|overdue]")
        views = self.plays.listing(actor=actor, which=which)  # type: ignore[arg-type]
        if not views:
            return Reply({"mine": "You have no open plays.", "overdue": "No open play is overdue."}.get(
                which, "No open plays."))
        now = self.health.clock.now()
        title = {"mine": "Your open plays", "overdue": "Overdue plays"}.get(which, "Open plays")
        lines = "\n".join(list_line(v, now) for v in views)
        return Reply(f"{title} ({len(views)}), most pressing first:\n{lines}")

    def show(self, words: list[str], actor: str) -> Reply:
        if len(words) != 1:
            raise UsageError("usage: /health play PLAY-n")
        return self._now_card(self.plays.show(actor=actor, ref=words[0]))

    def done(self, words: list[str], actor: str) -> Reply:
        if len(words) != 2:
            raise UsageError("usage: /health done PLAY-n STEP")
        view = self.plays.done(actor=actor, ref=words[0], step=words[1])
        return Reply(f"Noted on {view.ref}.", message=card(view, self.health.clock.now(), for_owner=False))

    def close(self, words: list[str], actor: str) -> Reply:
        if len(words) < 3:
            raise UsageError(f'usage: /health close PLAY-n OUTCOME "note" '
                             f'(OUTCOME: {", ".join(PLAY_OUTCOMES)})')
        view = self.plays.close(actor=actor, ref=words[0], outcome=words[1], note=" ".join(words[2:]))
        return Reply(f"Closed {view.ref}: {view.play.outcome}.", message=card(view, self.health.clock.now(),
                                                                              for_owner=False))

    def report(self, words: list[str], actor: str) -> Reply:
        if words:
            raise UsageError("usage: /health report")
        found = self.health.report(actor=actor)
        message = report_message(found)
        return Reply(message.text, message=message)

    # ------------------------------------------------------------------ buttons and the form

    def press(self, verb: str, value: str, actor: str) -> Reply | None:
        """`health.take` (a prompt id), `health.step` (`PLAY:STEP`), `health.close` (a play id)."""
        if verb == "take":
            return self._opened(self.plays.take(actor=actor, prompt_id=value))
        if verb == "step":
            play, _, step = value.partition(":")
            return self.done([play, step], actor)
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
        return self.close([context, values["outcome"], values.get("note", "")], actor)
