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
from opsloop.remediation.service import Remediation
from opsloop.runbooks.runs import Runbooks
from opsloop.sla.service import Sla
from opsloop.workitems import WorkItems

Handler = Callable[[str, str, str | None], Reply]


class Commands:
    def __init__(self, workitems: WorkItems, runbooks: Runbooks | None = None, *,
                 sla: Sla | None = None, oncall: OnCall | None = None,
                 remediation: Remediation | None = None, health: Health | None = None,
                 plays: Plays | None = None, digests: Digests | None = None) -> None:
        self.items = WorkItemCommands(workitems)
        self.handlers: dict[str, Handler] = {
            "/incident": self.items.incident,
            "/escalate": self.items.escalate,
            "/exception": self.items.exception,
        }
        self.buttons: dict[str, Callable[[str, str, str], Reply]] = {
            "workitem": self.items.press,
        }
        # form id -> handler(context, values, actor)
        self.forms: dict[str, Callable[[str, dict[str, str], str], Reply]] = {
            "incident.declare": lambda _ctx, values, actor: self.items.submit_declare(values, actor),
        }
        if runbooks is not None:
            self.runbooks = RunbookCommands(runbooks)
            self.handlers["/runbook"] = self.runbooks.command
            self.buttons["runbook"] = self.runbooks.press
            self.forms["runbook.skip"] = self.runbooks.submit_skip
            self.forms["runbook.reject"] = self.runbooks.submit_reject
        if sla is not None:
            clocks = ClockCommands(sla)
            self.items.verbs.update(clocks.verbs)
            self.buttons["clock"] = clocks.press
        if oncall is not None:
            self.handlers["/oncall"] = OnCallCommands(oncall).oncall_command
        if remediation is not None and runbooks is not None:
            remedies = RemediationCommands(remediation, runbooks)
            self.buttons["gate"] = remedies.press_gate
            self.buttons["remediation"] = remedies.press_call
            self.runbooks.verbs.update(retry=remedies.retry, confirm=remedies.confirm)
            self.runbooks.help_lines.append(REMEDIATION_HELP)
        if health is not None:
            health_commands = HealthCommands(health, plays)
            self.handlers["/health"] = health_commands.command
            self.buttons["health"] = health_commands.press
            if health_commands.plays is not None:
                self.forms["health.close"] = health_commands.plays.submit_close
        if digests is not None:
            self.handlers["/digest"] = DigestCommands(digests).command

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
