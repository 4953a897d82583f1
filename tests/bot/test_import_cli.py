"""`opsloop import pagerduty|oncall DIR`: a fragment and a report written, checked, nothing applied."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.cli import main
from tests.support import ROOT

EXPORTS = ROOT / "tests" / "core" / "importers"


@pytest.mark.parametrize(("vendor", "teams"), [("pagerduty", ["sre-primary", "database-follow-the-sun"]),
                                               ("oncall", ["primary", "vendor-calendar"])])
def test_import_writes_a_fragment_and_a_report_and_applies_nothing(
    vendor: str, teams: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPSLOOP_CONFIG", str(ROOT / "opsloop.yml"))
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", f"sqlite:///{tmp_path / 'untouched.db'}")
    users = tmp_path / "users.csv"
    users.write_text("email,slack_id\nalice@example.com,U0ALICE\nbob@example.com,U0BOB\n", encoding="utf-8")
    before = (ROOT / "opsloop.yml").read_bytes()
    assert main(["import", vendor, str(EXPORTS / vendor), "--users", str(users), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    fragment = tmp_path / "out" / f"{vendor}-policy.yml"
    report = tmp_path / "out" / f"{vendor}-report.md"
    assert f"{fragment}: 2 on-call teams" in out and f"{report}: " in out
    assert "the fragment validates; nothing was applied" in out
    text = fragment.read_text(encoding="utf-8")
    assert text.startswith(f"# Policy fragment from `opsloop import {vendor} ")
    assert list(yaml.safe_load(text)["oncall"]) == teams
    assert report.read_text(encoding="utf-8").startswith(f"# What `opsloop import {vendor}` could not map")
    assert (ROOT / "opsloop.yml").read_bytes() == before
    assert not (tmp_path / "untouched.db").exists()  # no database was opened, let alone changed


def test_a_bad_users_file_is_refused_with_its_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPSLOOP_CONFIG", str(ROOT / "opsloop.yml"))
    users = tmp_path / "users.csv"
    users.write_text("email,slack_id\nalice@example.com,alice\n", encoding="utf-8")
    assert main(["import", "pagerduty", str(EXPORTS / "pagerduty"), "--users", str(users)]) == 2
    assert "row 2: slack_id: 'alice' is not a Slack user id (U...)" in capsys.readouterr().err
