"""`/incident pause|resume|update INC-n ...` (and /escalate), and the card's Pause / Resume button."""

from __future__ import annotations

from collections.abc import Callable

from opsloop.commands.parse import is_ref
from opsloop.errors import UsageError
from opsloop.messages import Reply
from opsloop.sla.service import Sla
from opsloop.types import Kind

# (kind, ref, the words after the ref, actor) -> reply
Verb = Callable[[Kind, str, list[str], str], Reply]


class ClockCommands:
    def __init__(self, sla: Sla) -> None:
        self.sla = sla
        self.verbs: dict[str, Verb] = {"pause": self.pause, "resume": self.resume, "update": self.update}

    def pause(self, kind: Kind, ref: str, words: list[str], actor: str) -> Reply:
        reason = " ".join(words) or None
        item = self.sla.pause(actor=actor, ref=ref, reason=reason)
        return Reply(f"{item.ref}: clocks paused" + (f" ({reason})" if reason else "")
                     + f". Resume with `/{_command(kind)} resume {item.ref}`.")

    def resume(self, kind: Kind, ref: str, words: list[str], actor: str) -> Reply:
        item = self.sla.resume(actor=actor, ref=ref)
        return Reply(f"{item.ref}: clocks running again")

    def update(self, kind: Kind, ref: str, words: list[str], actor: str) -> Reply:
        if not words:
            raise UsageError(f'usage: /{_command(kind)} update {ref} "what changed"')
        item = self.sla.update(actor=actor, ref=ref, text=" ".join(words))
        return Reply(f"{item.ref}: update posted")

    def press(self, verb: str, value: str, actor: str) -> Reply:
        """The card's `clock.pause` / `clock.resume` buttons."""
        if not is_ref(value) or verb not in ("pause", "resume"):
            raise UsageError(f"unknown clock button {verb} {value!r}")
        if verb == "pause":
            item = self.sla.pause(actor=actor, ref=value, reason=None)
            return Reply(f"{item.ref}: clocks paused")
        item = self.sla.resume(actor=actor, ref=value)
        return Reply(f"{item.ref}: clocks running again")


def _command(kind: Kind) -> str:
    return "incident" if kind is Kind.INCIDENT else "escalate"
