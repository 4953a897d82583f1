"""The README stays true: CI runs exactly the test command it gives."""

from __future__ import annotations

import argparse
import re

from bot.cli import build_parser
from bot.settings import Settings
from tests.support import ROOT


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```(?:sh|bash)\n(.+?)\n```", text)


def test_readme_gives_two_commands_and_ci_runs_the_test_one() -> None:
    commands = readme_commands()[:2]
    run, test = commands
    assert "opsloop shell" in run
    assert "pytest" in test
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()


def _subcommands(parser: argparse.ArgumentParser, prefix: str = "opsloop") -> list[str]:
    """Every command line the CLI accepts, down to its last word (`opsloop audit verify`)."""
    found: list[str] = []
    for action in parser._actions:  # argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _subcommands(child, f"{prefix} {name}") or [f"{prefix} {name}"]
    return found


def test_the_readme_names_every_command_and_every_environment_variable() -> None:
    """Issue 16 part 7: a clone has no ../shared, so the README itself lists everything."""
    text = (ROOT / "README.md").read_text()
    commands = _subcommands(build_parser())
    assert len(commands) > 20
    missing = [c for c in commands
               if not re.search(re.escape(c).replace(r"\ ", r"\s+") + r"\b", text)
               and not _in_table(c, text)]
    assert missing == []
    variables = {alias for field in Settings.model_fields.values()
                 for alias in getattr(field.validation_alias, "choices", [])}
    assert "OPSLOOP_SMTP_URL" in variables
    assert [v for v in sorted(variables) if f"| `{v}` |" not in text] == []


def _in_table(command: str, text: str) -> bool:
    """`opsloop runbooks check|list|show ID` in the table names each of its alternatives."""
    *head, last = command.split()
    return any(re.search(rf"`{re.escape(' '.join(head))} [^`]*\b{re.escape(last)}\b", line)
               for line in text.splitlines() if line.startswith("| `opsloop"))
