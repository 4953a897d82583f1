"""`opsloop serve` and `opsloop socket` refuse to start without their Slack credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from tests.support import ROOT


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", f"sqlite:///{tmp_path / 'opsloop.db'}")
    monkeypatch.setenv("OPSLOOP_CONFIG", str(ROOT / "opsloop.yml"))
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(("command", "env", "reason"), [
    (["serve", "--port", "0"], {}, "SLACK_BOT_TOKEN is not set"),
    (["serve", "--port", "0"], {"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET is not set"),
    (["socket"], {"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_APP_TOKEN is not set"),
])
def test_missing_credentials_are_a_clear_exit_2(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str],
    env: dict[str, str], reason: str
) -> None:
    for name, value in env.items():
        environment.setenv(name, value)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"opsloop: {reason}")
    assert len(err.strip().splitlines()) == 1


def test_a_bad_port_is_a_usage_error(environment: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", "many"])
    assert exited.value.code == 2
