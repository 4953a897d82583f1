"""`opsloop runbooks ...`: check against git history and pinned snapshots, list, show, diff."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bot.cli import main
from opsloop.db import Database
from opsloop.runbooks.models import RunbookSnapshot
from opsloop.runbooks.versions import content_hash
from tests.core.runbooks.conftest import DRILL
from tests.support import ROOT, FakeClock

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com",
                    "-c", "commit.gpgsign=false", *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git checkout with the sample policy and the drill runbook committed at 1.0.0."""
    root = tmp_path / "ops"
    (root / "runbooks").mkdir(parents=True)
    (root / "runbooks" / "drill.yaml").write_text(DRILL)
    monkeypatch.setenv("OPSLOOP_RUNBOOKS_DIR", str(root / "runbooks"))
    monkeypatch.setenv("OPSLOOP_CONFIG", str(tmp_path / "absent.yml"))  # drill only: no routing to check
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    if shutil.which("git"):
        git(root, "init", "-q")
        git(root, "add", ".")
        git(root, "commit", "-qm", "drill 1.0.0")
    return root


def edit(repo: Path, old: str, new: str) -> None:
    path = repo / "runbooks" / "drill.yaml"
    path.write_text(path.read_text().replace(old, new))


def test_the_shipped_runbooks_pass_the_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPSLOOP_RUNBOOKS_DIR", str(ROOT / "runbooks"))
    monkeypatch.setenv("OPSLOOP_CONFIG", str(ROOT / "opsloop.yml"))
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    assert main(["runbooks", "check"]) == 0, capsys.readouterr().err
    assert "11 runbooks checked: all valid" in capsys.readouterr().out


@needs_git
def test_an_edit_without_a_bump_fails_and_the_bump_passes(repo: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runbooks", "check"]) == 0
    edit(repo, "dashboards", "graphs")
    assert main(["runbooks", "check"]) == 1
    err = capsys.readouterr().err
    assert "FAIL drill: changed since the last commit but its version did not increase" in err
    edit(repo, "version: 1.0.0", "version: 1.0.1")
    assert main(["runbooks", "check"]) == 0
    git(repo, "commit", "-qam", "drill 1.0.1")
    # committed without a bump: HEAD equals the file, but history holds 1.0.1 with other content
    edit(repo, "graphs", "charts")
    git(repo, "commit", "-qam", "sneaky")
    assert main(["runbooks", "check"]) == 1
    assert "version 1.0.1 appears with different content in commit" in capsys.readouterr().err


def test_a_version_pinned_with_other_content_fails(repo: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'pinned.db'}"
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", url)
    db = Database.from_url(url)
    db.upgrade()
    other = DRILL.replace("dashboards", "something else").encode()
    with db.transaction() as s:
        s.add(RunbookSnapshot(runbook_id="drill", version="1.0.0", sha256=content_hash(other),
                              content=other.decode(), first_seen=FakeClock().now()))
    db.dispose()
    assert main(["runbooks", "check"]) == 1
    assert "version 1.0.0 appears with different content in a snapshot pinned in the database" in \
        capsys.readouterr().err
    edit(repo, "version: 1.0.0", "version: 1.1.0")
    assert main(["runbooks", "check"]) == 0


def test_invalid_and_unrenderable_runbooks_fail_naming_them(repo: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "runbooks" / "broken.yaml").write_text(DRILL.replace("id: drill", "id: broken")
                                                   .replace("{{ item.id }}", "{{ item.nope }}"))
    assert main(["runbooks", "check"]) == 1
    assert "FAIL broken: steps[3] (tell).message: 'dict object' has no attribute 'nope'" in \
        capsys.readouterr().err
    (repo / "runbooks" / "broken.yaml").write_text("id: [\n")
    assert main(["runbooks", "check"]) == 1
    assert "FAIL broken: " in capsys.readouterr().err


def test_unusable_input_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPSLOOP_RUNBOOKS_DIR", str(tmp_path / "missing"))
    assert main(["runbooks", "check"]) == 2
    assert "no such runbooks directory" in capsys.readouterr().err


@needs_git
def test_list_show_and_diff_older_versions_from_git(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(repo, "version: 1.0.0", "version: 1.1.0")
    edit(repo, "dashboards", "graphs")
    git(repo, "commit", "-qam", "drill 1.1.0")
    assert main(["runbooks", "list"]) == 0
    assert capsys.readouterr().out.startswith("drill\t1.1.0\tactive\tU0SRE1\tRestart drill")
    assert main(["runbooks", "show", "drill", "--version", "1.0.0"]) == 0
    assert capsys.readouterr().out == DRILL
    assert main(["runbooks", "diff", "drill", "1.0.0", "1.1.0"]) == 0
    out = capsys.readouterr().out
    assert "-    title: \"Check {{ inputs.service }} dashboards\"" in out
    assert "+    title: \"Check {{ inputs.service }} graphs\"" in out
    assert main(["runbooks", "show", "drill", "--version", "9.0.0"]) == 2
    assert "drill has no version 9.0.0 (known: 1.0.0, 1.1.0)" in capsys.readouterr().err


def _shallow() -> bool:
    found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--is-shallow-repository"],
                           capture_output=True, text=True)
    return found.returncode != 0 or found.stdout.strip() != "false"


@needs_git
def test_the_readme_diff_example_runs_as_written(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 16 part 7: the README's `runbooks diff` example named a version that never existed."""
    if _shallow():
        pytest.skip("a shallow clone has no earlier runbook versions to compare")
    [line] = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
              if line.startswith("opsloop runbooks diff ")]
    words = line.split("#")[0].split()[1:]
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("OPSLOOP_RUNBOOKS_DIR", raising=False)
    assert main(words) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"--- {words[2]} {words[3]} (git ") and f"+++ {words[2]} {words[4]}" in out
