"""The slash commands and buttons, as text in and `Reply` out.

Slack and the console both hand what a person typed (or pressed) to
`Commands`; neither knows the grammar, so both behave the same.
"""

from __future__ import annotations

from collections.abc import Callable

from opsloop.commands.clocks import ClockCommands
from opsloop.commands.digest import DigestCommands
from opsloop.commands.health import HealthCommands
from opsloop.commands.oncall import OnCallCommands
from opsloop.commands.remediation import REMEDIATION_HELP, RemediationCommands
from opsloop.commands.runbook import RunbookCommands
from opsloop.commands.workitems import WorkItemCommands
from opsloop.digest.service import Digests
from opsloop.errors import UsageError
from opsloop.health.play_service import Plays
from opsloop.health.service import Health
from opsloop.messages import Reply
from opsloop.oncall import OnCall
from opsloop.present.dryrun import DryRun
from opsloop.present.items import Cards
from opsloop.present.runbooks import Checklists
from opsloop.remediation.service import Remediation
from opsloop.runbooks.runs import Runbooks
from opsloop.sla.service import Sla
from opsloop.workitems import WorkItems

Handler = Callable[[str, str, str | None], Reply]


class Commands:
    def __init__(self, *, workitems: WorkItems, cards: Cards, runbooks: Runbooks, checklists: Checklists,
                 sla: Sla, oncall: OnCall, remediation: Remediation, dry_run: DryRun, health: Health,
                 plays: Plays, digests: Digests) -> None:
        clocks = ClockCommands(sla)
        self.items = WorkItemCommands(workitems, cards, verbs=dict(clocks.verbs))
        runbook_verbs: dict[str, Callable[[list[str], str], Reply]] = {}
        self.runbooks = RunbookCommands(runbooks, checklists, dry_run, verbs=runbook_verbs,
                                        help_lines=[REMEDIATION_HELP])
        remedies = RemediationCommands(remediation, runbooks, self.runbooks.step)
        runbook_verbs.update(retry=remedies.retry, confirm=remedies.confirm)
        health_commands = HealthCommands(health, plays)
        self.handlers: dict[str, Handler] = {
            "/incident": self.items.incident,
            "/escalate": self.items.escalate,
            "/exception": self.items.exception,
            "/runbook": self.runbooks.command,
            "/oncall": OnCallCommands(oncall).oncall_command,
            "/health": health_commands.command,
            "/digest": DigestCommands(digests).command,
        }
        self.buttons: dict[str, Callable[[str, str, str], Reply]] = {
            "workitem": self.items.press,
            "runbook": self.runbooks.press,
            "clock": clocks.press,
            "gate": remedies.press_gate,
            "remediation": remedies.press_call,
            "health": health_commands.press,
        }
        # form id -> handler(context, values, actor)
        self.forms: dict[str, Callable[[str, dict[str, str], str], Reply]] = {
            "incident.declare": lambda _ctx, values, actor: self.items.submit_declare(values, actor),
            "runbook.skip": self.runbooks.submit_skip,
            "runbook.reject": self.runbooks.submit_reject,
            "health.close": health_commands.plays.submit_close,
        }

    @property
    def names(self) -> list[str]:
        return list(self.handlers)

    def handle(self, command: str, text: str, *, actor: str, channel: str | None = None) -> Reply:
        """Run one slash command as `actor`; domain errors propagate for the adapter to show."""
        handler = self.handlers.get(command)
        if handler is None:
            raise UsageError(f"unknown command {command} (try: {', '.join(self.handlers)})")
        return handler(text.strip(), actor, channel)

    def press(self, action: str, value: str, *, actor: str) -> Reply:
        """Run a button press (`workitem.acknowledge` with value `INC-1`) as `actor`."""
        family, _, verb = action.partition(".")
        handler = self.buttons.get(family)
        if handler is None or not verb:
            raise UsageError(f"unknown button {action}")
        return handler(verb, value, actor)

    def submit(self, form: str, context: str, values: dict[str, str], *, actor: str) -> Reply:
        """Run a filled-in form (a Slack modal) as `actor`."""
        handler = self.forms.get(form)
        if handler is None:
            raise UsageError(f"unknown form {form}")
        return handler(context, {k: v.strip() for k, v in values.items()}, actor)

    def help(self) -> str:
        return "\n\n".join(handler("help", "", None).text for handler in self.handlers.values())
