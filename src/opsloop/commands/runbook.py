"""/runbook: list, show and run runbooks; tick, skip and approve their steps."""

from __future__ import annotations

import re
from collections.abc import Callable

from opsloop.commands.parse import is_ref, tokens
from opsloop.errors import ConfigError, UsageError
from opsloop.events import RunAttached
from opsloop.messages import Form, FormField, Reply, escape, user
from opsloop.present.checklist import step_line
from opsloop.present.dryrun import DryRun
from opsloop.present.runbooks import Checklists, warnings
from opsloop.runbooks.loader import LoadedRunbook
from opsloop.runbooks.runs import Runbooks
from opsloop.runbooks.schema import ApprovalStep, HttpStep, NotifyStep, step_title

RUNBOOK_HELP = """\
*/runbook* — versioned runbooks on work items
• `/runbook list` · `/runbook show ID` — what there is, and what it says
• `/runbook run ID [INC-n] key=value ... [--dry-run]` — start one on a work item
• `/runbook status INC-n` — the checklist of the item's runs
• `/runbook done|approve INC-n STEP` · `/runbook reject INC-n STEP [reason]`
• `/runbook skip INC-n STEP reason` · `/runbook workaround INC-n STEP reason` — bypass a step, saying why
• `/runbook help`"""

_STEP_VERBS = ("done", "skip", "workaround", "approve", "reject")
_ASSIGN = re.compile(r"^([a-z][a-z0-9_]*)=(.*)$", re.DOTALL)


Verb = Callable[[list[str], str], Reply]  # (the words after the verb, actor) -> reply


class RunbookCommands:
    def __init__(self, runbooks: Runbooks, checklists: Checklists, dry_run: DryRun, *,
                 verbs: dict[str, Verb], help_lines: list[str]) -> None:
        self.runbooks = runbooks
        self.checklists = checklists
        self.dry_run = dry_run
        self.verbs = verbs  # more verbs from other capabilities (retry, confirm)
        self.help_lines = help_lines

    def command(self, text: str, actor: str, channel: str | None) -> Reply:
        words = tokens(text)
        verb = words[0].lower() if words else "help"
        args = words[1:]
        if verb == "help":
            return Reply("\n".join([RUNBOOK_HELP, *self.help_lines]))
        if verb in self.verbs:
            return self.verbs[verb](args, actor)
        if verb == "list":
            return self._list()
        if verb == "show":
            if len(args) != 1:
                raise UsageError("usage: /runbook show ID")
            return self._show(self.runbooks.library.load(args[0]))
        if verb == "run":
            return self._run(args, actor, channel)
        if verb == "status":
            if len(args) != 1 or not is_ref(args[0]):
                raise UsageError("usage: /runbook status INC-n")
            return self._status(args[0].upper())
        if verb in _STEP_VERBS:
            if len(args) < 2 or not is_ref(args[0]):
                raise UsageError(f"usage: /runbook {verb} INC-n STEP" + (
                    " reason" if verb in ("skip", "workaround") else ""))
            ref, step = args[0].upper(), args[1]
            run_id = self.runbooks.locate(ref, step)
            reason = " ".join(args[2:]) or None
            return self.step(actor, run_id, step, verb, reason)
        raise UsageError(f"unknown subcommand {verb!r}\n{RUNBOOK_HELP}")

    # ------------------------------------------------------------------ buttons and forms

    def press(self, verb: str, value: str, actor: str) -> Reply:
        run_id, step = _button_value(value)
        if verb == "skip":
            ref = self.runbooks.ref_of(run_id)
            return Reply(f"Why skip {step}?", form=Form(
                id="runbook.skip", title="Skip a step", submit_label="Skip", context=value,
                usage=f'/runbook skip {ref} {step} "reason"  (or /runbook workaround {ref} {step} "how")',
                fields=[FormField("reason", "Why?", multiline=True,
                                  placeholder="Dashboards already checked by the on-call"),
                        FormField("outcome", "What happened", options=["skipped", "worked around"],
                                  initial="skipped")]))
        if verb == "reject":
            ref = self.runbooks.ref_of(run_id)
            return Reply(f"Why reject {step}?", form=Form(
                id="runbook.reject", title="Reject", submit_label="Reject", context=value,
                usage=f'/runbook reject {ref} {step} "reason"',
                fields=[FormField("reason", "Why?", multiline=True)]))
        if verb not in ("done", "approve"):
            raise UsageError(f"unknown button runbook.{verb}")
        return self.step(actor, run_id, step, verb)

    def submit_skip(self, context: str, values: dict[str, str], actor: str) -> Reply:
        run_id, step = _button_value(context)
        outcome = values.get("outcome") or "skipped"
        if outcome not in ("skipped", "worked around"):
            raise UsageError(f"outcome: {outcome!r} is not skipped or worked around")
        verb = "skip" if outcome == "skipped" else "workaround"
        return self.step(actor, run_id, step, verb, values.get("reason"))

    def submit_reject(self, context: str, values: dict[str, str], actor: str) -> Reply:
        run_id, step = _button_value(context)
        return self.step(actor, run_id, step, "reject", values.get("reason"))

    def step(self, actor: str, run_id: int, step: str, verb: str, reason: str | None = None) -> Reply:
        """A step action (done, skip, approve ...), answered with what it did."""
        return Reply(step_line(self.runbooks.act(actor=actor, run_id=run_id, step_id=step, verb=verb,
                                                 reason=reason)))

    # ------------------------------------------------------------------ the verbs

    def _run(self, args: list[str], actor: str, channel: str | None) -> Reply:
        if not args:
            raise UsageError("usage: /runbook run ID [INC-n] key=value ... [--dry-run]")
        runbook_id, rest = args[0], args[1:]
        ref = rest.pop(0).upper() if rest and is_ref(rest[0]) else None
        dry_run = "--dry-run" in rest
        inputs: dict[str, str] = {}
        for word in (w for w in rest if w != "--dry-run"):
            match = _ASSIGN.match(word)
            if match is None:
                raise UsageError(f"{word!r}: give inputs as key=value (quote values with spaces)")
            if match.group(1) in inputs:
                raise UsageError(f"{match.group(1)}: given twice; give it once")
            inputs[match.group(1)] = match.group(2)
        if dry_run:
            plan = self.runbooks.plan(actor=actor, runbook_id=runbook_id, ref=ref, inputs=inputs,
                                      channel=channel)
            return Reply("\n".join([f"dry run: inputs are valid for {runbook_id} {plan.runbook.version}; "
                                    "nothing started, nothing called", *self.dry_run.report(plan)]))
        started = self.runbooks.start(actor=actor, runbook_id=runbook_id, ref=ref, inputs=inputs,
                                      channel=channel)
        notes = warnings(started) if isinstance(started, RunAttached) else []
        return Reply("\n".join([f"Started runbook {runbook_id} on {started.item.ref}; its checklist is in "
                                "the thread.", *notes]))

    def _status(self, ref: str) -> Reply:
        messages = self.checklists.of(ref)
        if not messages:
            return Reply(f"{ref} runs no runbook. Start one with `/runbook run ID {ref}`.")
        others = f" (and {len(messages) - 1} earlier run(s))" if len(messages) > 1 else ""
        return Reply(f"{ref}: its runbook{others}", message=messages[0])

    def _list(self) -> Reply:
        lines = ["*Runbooks*"]
        for runbook_id, result in self.runbooks.library.load_all():
            if isinstance(result, ConfigError):
                lines.append(f"• {runbook_id} — ✗ invalid (`opsloop runbooks check` says why)")
                continue
            rb = result.runbook
            status = "" if rb.status == "active" else f" [{rb.status}]"
            lines.append(f"• `{rb.id}` {rb.version}{status} — {escape(rb.title)}")
        return Reply("\n".join(lines) if len(lines) > 1 else "No runbooks.")

    def _show(self, loaded: LoadedRunbook) -> Reply:
        rb = loaded.runbook
        lines = [f"*{escape(rb.title)}* — `{rb.id}` {rb.version} ({rb.status}), "
                 f"owners {', '.join(user(o) for o in rb.owners)}"]
        if rb.description:
            lines.append(escape(rb.description.strip()))
        if rb.inputs:
            lines.append("*Inputs*")
            for name, spec in rb.inputs.items():
                bits = [spec.type, "required" if spec.required else f"default {spec.default}"
                        if spec.default is not None else "optional"]
                if spec.pattern:
                    bits.append(f"pattern {spec.pattern}")
                about = f" — {escape(spec.description)}" if spec.description else ""
                lines.append(f"• `{name}` ({', '.join(bits)}){about}")
        lines.append("*Steps*")
        for n, step in enumerate(rb.steps, start=1):
            extra = ""
            if isinstance(step, ApprovalStep):
                extra = f" — approval by {', '.join(step.approvers)}, {step.min_approvals} needed"
            elif isinstance(step, NotifyStep):
                extra = f" — posts to #{step.channel}"
            elif isinstance(step, HttpStep):
                extra = f" — {step.request.method} (remediation executor)"
            title = step.title or step_title(step)
            lines.append(f"{n}. `{step.id}` {escape(title)}{extra}")
        lines.append(f"sha256 {loaded.sha256[:12]}")
        return Reply("\n".join(lines))


def _button_value(value: str) -> tuple[int, str]:
    run, _, step = value.partition(":")
    if not run.isdigit() or not step:
        raise UsageError(f"this button carries no runbook step ({value!r})")
    return int(run), step
