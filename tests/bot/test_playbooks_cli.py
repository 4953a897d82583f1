"""`opsloop playbooks check|list`: an edited playbook must raise its version, like a runbook."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bot.cli import main
from tests.core.health.test_playbooks import SHIPPED

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com",
                    "-c", "commit.gpgsign=false", *args], check=True, capture_output=True)


@needs_git
def test_check_refuses_an_edit_without_a_higher_version(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "ops"
    shutil.copytree(SHIPPED, repo / "playbooks")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "playbooks")
    monkeypatch.setenv("OPSLOOP_PLAYBOOKS_DIR", str(repo / "playbooks"))
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    assert main(["playbooks", "check"]) == 0
    assert "4 playbooks checked: all valid" in capsys.readouterr().out
    path = repo / "playbooks" / "credit.yaml"
    path.write_text(path.read_text().replace("due: 16h", "due: 24h"))
    assert main(["playbooks", "check"]) == 1
    assert ("FAIL credit: changed since the last commit but its version did not increase (committed 1.0.0, "
            "now 1.0.0): raise `version`") in capsys.readouterr().err
    path.write_text(path.read_text().replace("version: 1.0.0", "version: 1.0.1"))
    assert main(["playbooks", "check"]) == 0
    assert main(["playbooks", "list"]) == 0
    assert "credit\t1.0.1\tactive\tU0CSM1\tService credit" in capsys.readouterr().out
