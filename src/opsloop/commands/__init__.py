"""The slash commands and buttons, as text in and `Reply` out.

Slack and the console both hand what a person typed (or pressed) to
`Commands`; neither knows the grammar, so both behave the same.
"""

from __future__ import annotations

from collections.abc import Callable

from opsloop.authz import Authorizer
from opsloop.commands.clocks import ClockCommands
from opsloop.commands.comms import CommsCommands
from opsloop.commands.digest import DigestCommands
from opsloop.commands.followups import FollowUpCommands
from opsloop.commands.grammar import Command, Context
from opsloop.commands.health import HealthCommands
from opsloop.commands.maintenance import MaintenanceCommands
from opsloop.commands.oncall import OnCallCommands
from opsloop.commands.remediation import RemediationCommands
from opsloop.commands.reviews import ReviewCommands
from opsloop.commands.rollouts import RolloutCommands
from opsloop.commands.runbook import RunbookCommands
from opsloop.commands.workitems import WorkItemCommands
from opsloop.digest.service import Digests
from opsloop.errors import UsageError
from opsloop.health.play_service import Plays
from opsloop.health.service import Health
from opsloop.loops.review import Review
from opsloop.maintenance.service import Maintenance
from opsloop.messages import Reply
from opsloop.oncall import OnCall
from opsloop.people import People
from opsloop.present.dryrun import DryRun
from opsloop.present.items import Cards
from opsloop.present.runbooks import Checklists
from opsloop.remediation.service import Remediation
from opsloop.reviews.followups import FollowUps
from opsloop.reviews.service import Reviews
from opsloop.rollouts.decisions import Decisions
from opsloop.rollouts.service import Rollouts
from opsloop.runbooks.runs import Runbooks
from opsloop.sla.service import Sla
from opsloop.types import Kind
from opsloop.workitems import WorkItems


class Commands:
    """Every slash command, declared with the grammar (`commands.grammar`), and the buttons and forms.

    A feature adds verbs to a command with `commands["/incident"].add(Verb(...))`; the help, the
    refusals and "did you mean" follow from the declaration."""

    def __init__(self, *, workitems: WorkItems, cards: Cards, runbooks: Runbooks, checklists: Checklists,
                 sla: Sla, oncall: OnCall, remediation: Remediation, dry_run: DryRun, health: Health,
                 plays: Plays, digests: Digests, authz: Authorizer, maintenance: Maintenance,
                 review: Review, followups: FollowUps, reviews: Reviews, rollouts: Rollouts,
                 decisions: Decisions) -> None:
        self.people = People(authz)
        comms = CommsCommands(review)
        clocks = ClockCommands(sla, comms.public_update)
        self.items = WorkItemCommands(workitems, cards)
        fleet = RolloutCommands(rollouts, decisions)
        self.runbooks = RunbookCommands(runbooks, checklists, dry_run, workitems, fleet)
        remedies = RemediationCommands(remediation, runbooks, self.runbooks.step)
        health_commands = HealthCommands(health, plays)
        windows = MaintenanceCommands(maintenance, workitems, cards)
        incident, escalate = self.items.command(Kind.INCIDENT), self.items.command(Kind.ESCALATION)
        incident.add(*clocks.verbs(Kind.INCIDENT), *comms.verbs())
        follow = FollowUpCommands(followups)
        incident.add(*follow.incident_verbs())
        postmortems = ReviewCommands(reviews)
        incident.add(*postmortems.incident_verbs())
        escalate.add(*clocks.verbs(Kind.ESCALATION))
        runbook = self.runbooks.command()
        runbook.add(*remedies.verbs())
        runbook.add(*fleet.verbs())
        self.commands: dict[str, Command] = {c.name: c for c in (
            incident, escalate, self.items.command(Kind.EXCEPTION), runbook, OnCallCommands(oncall).command(),
            health_commands.command(), DigestCommands(digests).command(), windows.command(),
            follow.command())}
        self.buttons: dict[str, Callable[[str, str, str], Reply]] = {
            "workitem": self.items.press,
            "runbook": self.runbooks.press,
            "clock": clocks.press,
            "gate": remedies.press_gate,
            "remediation": remedies.press_call,
            "rollout": fleet.press,
            "health": health_commands.press,
            "maintenance": windows.press,
            "list": self._next_page,
            "notice": comms.press,
            "followup": follow.press,
            "review": postmortems.press,
        }
        # form id -> handler(context, values, actor)
        self.forms: dict[str, Callable[[str, dict[str, str], str], Reply]] = {
            "incident.declare": lambda _ctx, values, actor: self.items.submit_declare(values, actor),
            "runbook.skip": self.runbooks.submit_skip,
            "runbook.reject": self.runbooks.submit_reject,
            "health.close": health_commands.plays.submit_close,
            "notice.edit": comms.submit_edit,
            "notice.public": comms.submit_public,
            "followup.close": follow.submit_close,
            "review.edit": postmortems.submit_edit,
        }

    def __getitem__(self, name: str) -> Command:
        return self.commands[name]

    @property
    def names(self) -> list[str]:
        return list(self.commands)

    def handle(self, command: str, text: str, *, actor: str, channel: str | None = None) -> Reply:
        """Run one slash command as `actor`; domain errors propagate for the adapter to show."""
        found = self.commands.get(command)
        if found is None:
            raise UsageError(f"unknown command {command} (try: {', '.join(self.commands)})")
        return found.run(text, Context(command, actor, channel, self.people))

    def help_for(self, command: str, text: str) -> Reply | None:
        """The command's help when `text` asks for it (else None): no database, no directory, so an
        adapter can answer it at once, however busy the core is."""
        found = self.commands.get(command)
        return Reply(found.help()) if found is not None and found.asks_for_help(text) else None

    def press(self, action: str, value: str, *, actor: str) -> Reply:
        """Run a button press (`workitem.acknowledge` with value `INC-1`) as `actor`."""
        family, _, verb = action.partition(".")
        handler = self.buttons.get(family)
        if handler is None or not verb:
            raise UsageError(f"unknown button {action}")
        return handler(verb, value, actor)

    def _next_page(self, verb: str, value: str, actor: str) -> Reply:
        command, text = self.items.press_list(verb, value, actor)
        return self.handle(command, text, actor=actor)

    def submit(self, form: str, context: str, values: dict[str, str], *, actor: str) -> Reply:
        """Run a filled-in form (a Slack modal) as `actor`."""
        handler = self.forms.get(form)
        if handler is None:
            raise UsageError(f"unknown form {form}")
        return handler(context, {k: v.strip() for k, v in values.items()}, actor)

    def help(self) -> str:
        return "\n\n".join(command.help() for command in self.commands.values())
