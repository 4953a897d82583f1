"""The console's clock (`tick`, `at`, `now`) and its `alert`: the README's session runs as written.

Issue 16 part 6: a new user watches a warning, a breach, a page and an acknowledgement
without waiting, because the console's clock moves, not the wall clock.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from bot.cli import main

ROOT = Path(__file__).resolve().parents[2]


def readme_session() -> tuple[str, list[str]]:
    """The session the README shows, and the command line it names for it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- console-session: (.+?) < session.txt -->\n```text\n(.*?)```", text, re.S)
    assert found, "the README lost its console session"
    return found.group(1), found.group(2).splitlines()


def shell(lines: list[str], user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.chdir(ROOT)  # the sample opsloop.yml, accounts and runbooks, as a new user has them
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", f"sqlite:///{tmp_path / 'opsloop.db'}")
    for name in ("OPSLOOP_CONFIG", "OPSLOOP_RUNBOOKS_DIR", "OPSLOOP_SLACK_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["shell", "--as", user]) == 0
    return capsys.readouterr().out


def test_the_readme_session_shows_a_warning_a_breach_a_page_and_an_acknowledgement(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    command, lines = readme_session()
    assert command == "opsloop shell --as U0RESP2"
    out = shell(lines, "U0RESP2", tmp_path, monkeypatch, capsys)
    assert "alert checkout-api-5xx-above-5 (trigger) via monitors: INC-1" in out
    # in the order they happen, each once
    order = ["📟 You are paged: INC-1",                                  # level 1 at once
             "⏳ INC-1: 1m15s left for the response target (5m; 75% used)",  # the warning at 3m45s
             "🚨 INC-1 missed its response target (5m)",                # the breach at 5m
             "escalation sre-primary, level 2 of 2",                    # the chain's next level
             "INC-1 acknowledged — now acknowledged"]
    positions = [out.find(line) for line in order]
    assert -1 not in positions, [line for line, at in zip(order, positions, strict=True) if at < 0]
    assert positions == sorted(positions)
    assert out.count("🚨 INC-1 missed its response target") == 1
    assert "✅ INC-1 was acknowledged by @U0RESP2" in out
    assert "✗" not in out  # no line of the session was refused


def test_the_clock_moves_forward_only_and_reads_times_as_override_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = shell(["at 2030-01-07 09:00", "now", "tick 90m", "at 2030-01-07 09:30", "tick soon", "tick",
                 "at mon 09:00"], "U0RESP1", tmp_path, monkeypatch, capsys)
    lines = out.splitlines()
    assert lines[:3] == ["It is Mon 07 Jan 2030 09:00 (Europe/Berlin)."] * 2 + [
        "It is Mon 07 Jan 2030 10:30 (Europe/Berlin)."]
    assert lines[3] == "✗ '2030-01-07 09:30' is in the past: the console's clock only moves forward"
    assert lines[4].startswith("✗ ") and "soon" in lines[4]
    assert lines[5] == "✗ usage: tick DURATION (e.g. tick 5m) or at TIME (e.g. at 18:00)"
    assert lines[6] == "It is Mon 14 Jan 2030 09:00 (Europe/Berlin)."


def test_an_exception_expires_when_the_console_ticks_past_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = shell(['/exception "Skip the change freeze for the hot patch" expires:4h tenant:acme',
                 "as U0SRE1", "press 1", "tick 3h", "tick 2h"], "U0RESP1", tmp_path, monkeypatch, capsys)
    approved, three_hours, five_hours = out.split("It is ")[:3]
    assert "EXC-1 approved" in approved
    assert "expired" not in approved + three_hours
    assert "⌛ EXC-1 expired: Skip the change freeze for the hot patch" in five_hours  # at 4h, on the way


def test_alerts_resolve_by_key_and_bad_alerts_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = shell(['alert "Disk full on db-1" warning service=db', "alert resolve disk-full-on-db-1",
                 'alert "unterminated', "alert critical", "/incident list all"],
                "U0RESP1", tmp_path, monkeypatch, capsys)
    lines = out.splitlines()
    assert lines[0].startswith("alert disk-full-on-db-1 (trigger) via monitors: INC-1")
    assert any(line.startswith("alert disk-full-on-db-1 (resolve) via monitors: no new incident; touched INC-1")
               for line in lines)
    assert any(line.startswith("✗ cannot read the alert:") for line in lines)
    assert any(line.startswith('✗ usage: alert "summary"') for line in lines)
    # the alert's resolve really resolved the incident it opened (Events v2: resolve resolves)
    assert any(line.startswith("• INC-1 [sev3] Disk full on db-1 — resolved") for line in lines)
