"""The README stays true: CI runs exactly the test command it gives."""

from __future__ import annotations

import re

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
