"""/runbook: list, show and run runbooks; tick, skip and approve their steps."""

from __future__ import annotations

from opsloop.commands.args import ANY_ID, RUNBOOK_ID, STEP_ID
from opsloop.commands.grammar import Args, Command, Flag, Pairs, Pos, Rest, Run, Verb
from opsloop.commands.rollouts import RolloutCommands
from opsloop.errors import ConfigError, UsageError
from opsloop.events import RunAttached
from opsloop.messages import Form, FormField, Reply, escape, user
from opsloop.present.checklist import step_line
from opsloop.present.dryrun import DryRun
from opsloop.present.runbooks import Checklists, warnings
from opsloop.runbooks.runs import Runbooks
from opsloop.runbooks.schema import ApprovalStep, HttpStep, NotifyStep, step_title
from opsloop.workitems import WorkItems


class RunbookCommands:
    def __init__(self, runbooks: Runbooks, checklists: Checklists, dry_run: DryRun,
                 workitems: WorkItems, fleet: RolloutCommands) -> None:
        self.runbooks = runbooks
        self.workitems = workitems
        self.checklists = checklists
        self.dry_run = dry_run
        self.fleet = fleet  # rollouts: a wave's approval, per-tenant outcomes in status

    def command(self) -> Command:
        ref, step = Pos("ref", ANY_ID), Pos("step", STEP_ID)
        return Command("/runbook", "versioned runbooks on work items", [
            Verb("list", "the runbooks there are", run=self._list),
            Verb("show", "what one says: inputs, steps, version", Pos("runbook", RUNBOOK_ID), run=self._show),
            Verb("run", "start one on a work item (the one whose channel this is, if none is named)",
                 Pos("runbook", RUNBOOK_ID), Pos("ref", ANY_ID, optional=True), Pairs("inputs"),
                 Flag("dry-run"), run=self._run),
            Verb("status", "the checklist of the item's runs", ref, run=self._status),
            Verb("done", "mark a manual step done", ref, step, run=self._step("done")),
            Verb("approve", "approve an approval step", ref, step, run=self._step("approve")),
            Verb("reject", "reject an approval step", ref, step, Rest("reason"), run=self._step("reject")),
            Verb("skip", "bypass a step, saying why", ref, step, Rest("reason", required=True),
                 run=self._step("skip")),
            Verb("workaround", "a step done another way, saying how", ref, step,
                 Rest("reason", required=True, label="how"), run=self._step("workaround")),
        ])

    def _step(self, verb: str) -> Run:
        def run(args: Args) -> Reply:
            if verb in ("approve", "reject"):  # a rollout step whose wave waits for approval
                answered = self.fleet.wave(args, verb)
                if answered is not None:
                    return answered
            run_id = self.runbooks.locate(args["ref"], args["step"])
            return self.step(args.actor, run_id, args["step"], verb, args.get("reason"))
        return run

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
        """A step action (done, skip, approve ...), answered with what it did. An exception's
        approval step is the exception's own decision: approving it approves the exception."""
        if verb in ("approve", "reject") and (ref := self.runbooks.decides_with_item(run_id, step)):
            item = self.workitems.act(actor=actor, ref=ref, action=verb, note=reason)
            return Reply(f"{item.ref} is now {item.state}, and with it step `{step}` of its runbook "
                         "(one decision)")
        return Reply(step_line(self.runbooks.act(actor=actor, run_id=run_id, step_id=step, verb=verb,
                                                 reason=reason)))

    # ------------------------------------------------------------------ the verbs

    def _run(self, args: Args) -> Reply:
        runbook_id, ref, inputs, channel, actor = (args["runbook"], args["ref"], args["inputs"], args.channel,
                                                   args.actor)
        if args["dry_run"]:
            plan = self.runbooks.plan(actor=actor, runbook_id=runbook_id, ref=ref, inputs=inputs,
                                      channel=channel)
            return Reply("\n".join([f"dry run: inputs are valid for {runbook_id} {plan.runbook.version}; "
                                    "nothing started, nothing called", *self.dry_run.report(plan)]))
        started = self.runbooks.start(actor=actor, runbook_id=runbook_id, ref=ref, inputs=inputs,
                                      channel=channel)
        notes = warnings(started) if isinstance(started, RunAttached) else []
        return Reply("\n".join([f"Started runbook {runbook_id} on {started.item.ref}; its checklist is in "
                                "the thread.", *notes]))

    def _status(self, args: Args) -> Reply:
        ref = args["ref"]
        messages = self.checklists.of(ref)
        if not messages:
            return Reply(f"{ref} runs no runbook. Start one with `/runbook run ID {ref}`.")
        others = f" (and {len(messages) - 1} earlier run(s))" if len(messages) > 1 else ""
        fleet = self.fleet.status(ref)
        return Reply("\n".join([f"{ref}: its runbook{others}", *fleet]), message=messages[0])

    def _list(self, args: Args) -> Reply:
        lines = ["*Runbooks*"]
        for runbook_id, result in self.runbooks.library.load_all():
            if isinstance(result, ConfigError):
                lines.append(f"• {runbook_id} — ✗ invalid (`opsloop runbooks check` says why)")
                continue
            rb = result.runbook
            status = "" if rb.status == "active" else f" [{rb.status}]"
            lines.append(f"• `{rb.id}` {rb.version}{status} — {escape(rb.title)}")
        return Reply("\n".join(lines) if len(lines) > 1 else "No runbooks.")

    def _show(self, args: Args) -> Reply:
        loaded = self.runbooks.library.load(args["runbook"])
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
