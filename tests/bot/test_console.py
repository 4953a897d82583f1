"""`opsloop shell` and the CLI, as a person (or a script) uses them."""

from __future__ import annotations

import io
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.bootstrap import Services
from bot.console import Console, plain
from tests.support import ROOT

SESSION = """\
/incident declare "Checkout API returns 500" sev1 tenant:acme
/incident ack INC-1
/incident resolve INC-1 rolled back
/incident status INC-1
"""


def opsloop(*args: str, stdin: str = "", cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], input=stdin, capture_output=True, text=True,
        cwd=cwd, env=env, timeout=120, check=False,
    )


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        "OPSLOOP_DATABASE_URL": f"sqlite:///{tmp_path / 'opsloop.db'}",
        "OPSLOOP_CONFIG": str(ROOT / "opsloop.yml"),
        "OPSLOOP_RUNBOOKS_DIR": str(ROOT / "runbooks"),
    }


def test_the_readme_session_then_audit_verify_then_tampering(tmp_path: Path, cli_env: dict[str, str]) -> None:
    shell = opsloop("shell", "--as", "U0RESP1", stdin=SESSION, cwd=tmp_path, env=cli_env)
    assert shell.returncode == 0, shell.stderr
    out = shell.stdout
    assert "Declared INC-1: Checkout API returns 500 (sev1)" in out
    assert "INC-1 acknowledged — now acknowledged" in out
    assert "INC-1 resolved — now resolved" in out
    assert "State: resolved" in out and "Tenants: acme" in out
    assert "@U0RESP1 resolved INC-1: rolled back" in out
    assert re.search(r"\[\d+: Acknowledge\]", out)
    assert "#inc-1-checkout-api-returns-500 | (created for INC-1" in out  # the console makes the channel too
    assert "Traceback" not in shell.stdout + shell.stderr

    verify = opsloop("audit", "verify", cwd=tmp_path, env=cli_env)
    assert verify.returncode == 0, verify.stderr
    assert "audit chain self-consistent" in verify.stdout  # no signing key: it cannot say more

    with sqlite3.connect(tmp_path / "opsloop.db") as connection:
        seq = connection.execute(
            "SELECT seq FROM audit_events WHERE action = 'incident.acknowledge'").fetchone()[0]
        connection.execute("UPDATE audit_events SET actor = 'U0MALLORY' WHERE seq = ?", (seq,))
    broken = opsloop("audit", "verify", cwd=tmp_path, env=cli_env)
    assert broken.returncode == 1
    assert f"event {seq} (incident.acknowledge INC-1) was altered" in broken.stderr

    export = opsloop("audit", "export", "--since", "2000-01-01", cwd=tmp_path, env=cli_env)
    assert export.returncode == 0 and export.stdout.count("\n") >= 4


def test_bad_usage_exits_2_with_one_line(tmp_path: Path, cli_env: dict[str, str]) -> None:
    result = opsloop("audit", "export", "--since", "yesterday", cwd=tmp_path, env=cli_env)
    assert result.returncode == 2 and "not a date" in result.stderr
    bad_config = {**cli_env, "OPSLOOP_CONFIG": str(tmp_path / "missing.yml")}
    result = opsloop("shell", cwd=tmp_path, env=bad_config)
    assert result.returncode == 2
    assert result.stderr.startswith(f"opsloop: no policy file at {tmp_path / 'missing.yml'}: ")
    assert "OPSLOOP_CONFIG=" in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_db_upgrade_is_idempotent(tmp_path: Path, cli_env: dict[str, str]) -> None:
    for _ in range(2):
        result = opsloop("db", "upgrade", cwd=tmp_path, env=cli_env)
        assert result.returncode == 0 and "current" in result.stdout


def run_console(services: Services, script: str, user: str = "U0RESP1") -> str:
    out = io.StringIO()
    Console(services, user=user, out=out).run(script.splitlines())
    return out.getvalue()


def test_buttons_can_be_pressed_and_users_switched(services: Services) -> None:
    out = run_console(services, """\
/exception "Skip the change freeze for the tenant hot patch" expires:4h tenant:acme
press 1
as U0SRE1
press 1
/exception status EXC-1
""", user="U0CSM1")
    assert "Requested EXC-1" in out
    assert "[1: Approve] [2: Reject]" in out
    assert "✗ you may not approve exceptions: that needs the role approver or admin" in out
    assert "You are now U0SRE1 (approver)." in out
    assert "EXC-1 approved — now approved" in out
    assert "Expires: " in out


def test_bad_input_prints_a_usage_line_never_a_traceback(services: Services) -> None:
    out = run_console(services, """\
/incident declare "unclosed
/incident frobnicate INC-1
/incident ack
/incident ack INC-404
/nope
press 99
dance
/incident declare
/incident help
""")
    assert "✗ cannot read that" in out
    assert "✗ unknown verb 'frobnicate' (verbs: declare, ack, " in out
    assert "✗ /incident ack needs an incident id (INC-n) — usage: `/incident ack INC-n [\"note\"]`" in out
    assert "✗ no work item INC-404" in out
    assert "✗ unknown command /nope" in out
    assert "✗ usage: press N" in out
    assert "✗ unknown input 'dance'" in out
    assert 'usage: /incident declare "title"' in out
    assert "*/incident* — declare and drive incidents" in out
    assert "Traceback" not in out


def test_links_and_link_buttons_read_as_words_and_addresses() -> None:
    assert plain("see <https://ci.example/run/9|deploy v1.4.2> by ci") == "see deploy v1.4.2 (https://ci.example/run/9) by ci"
