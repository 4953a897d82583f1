"""Buttons and typed verbs of remediation: approval requests, and confirming or retrying http calls."""

from __future__ import annotations

from collections.abc import Callable

from opsloop.commands.args import ANY_ID, STEP_ID, Choice
from opsloop.commands.grammar import Args, Pos, Verb
from opsloop.errors import UsageError
from opsloop.messages import Form, FormField, Reply
from opsloop.present.remediation import decision_text
from opsloop.remediation.service import Remediation
from opsloop.runbooks.runs import Runbooks


class RemediationCommands:
    def __init__(self, remediation: Remediation, runbooks: Runbooks,
                 step: Callable[[str, int, str, str], Reply]) -> None:
        self.decisions = remediation.decisions  # confirm or retry a call; an approval request's gate
        self.runbooks = runbooks
        self.step = step  # a step action, answered (RunbookCommands.step)

    def press_gate(self, verb: str, value: str, actor: str) -> Reply:
        """Approve / Reject on an approval request message (its value is the round id)."""
        if not value.isdigit():
            raise UsageError(f"this button carries no approval request ({value!r})")
        run_id, step, stale = self.decisions.round_target(int(value))
        if stale:
            return Reply(stale)
        if verb == "approve":
            return self.step(actor, run_id, step, "approve")
        if verb == "reject":
            ref = self.runbooks.ref_of(run_id)
            return Reply(f"Why reject {step}?", form=Form(
                id="runbook.reject", title="Reject", submit_label="Reject", context=f"{run_id}:{step}",
                usage=f'/runbook reject {ref} {step} "reason"',
                fields=[FormField("reason", "Why?", multiline=True)]))
        raise UsageError(f"unknown button gate.{verb}")

    def press_call(self, verb: str, value: str, actor: str) -> Reply:
        """It succeeded / It failed / Retry on an http step (its value: `call id:retries so far`)."""
        call_id, _, retries = value.partition(":")
        if not call_id.isdigit() or not (retries.isdigit() or retries == ""):
            raise UsageError(f"this button carries no remediation call ({value!r})")
        return Reply(decision_text(self.decisions.decide(actor=actor, call_id=int(call_id), verb=verb,
                                                         retries=int(retries) if retries else None)))

    def verbs(self) -> list[Verb]:
        """`/runbook retry|confirm`: the http steps' verbs."""
        ref, step = Pos("ref", ANY_ID), Pos("step", STEP_ID)
        return [
            Verb("retry", "call a failed (or unknown) http step again", ref, step, run=self.retry),
            Verb("confirm", "settle an http step whose outcome is unknown", ref, step,
                 Pos("outcome", Choice(("succeeded", "failed"), "an outcome (succeeded or failed)")),
                 run=self.confirm),
        ]

    def retry(self, args: Args) -> Reply:
        call_id = self.decisions.locate_call(args["ref"], args["step"])
        return Reply(decision_text(self.decisions.decide(actor=args.actor, call_id=call_id, verb="retry")))

    def confirm(self, args: Args) -> Reply:
        call_id = self.decisions.locate_call(args["ref"], args["step"])
        decision = self.decisions.decide(actor=args.actor, call_id=call_id, verb=args["outcome"])
        return Reply(decision_text(decision))
