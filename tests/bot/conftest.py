"""Fixtures for the Slack surface: a mock Slack Web API and services wired to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.bootstrap import Services, bootstrap
from bot.cli import main
from bot.http import create_http_app
from bot.settings import Settings
from bot.slack.wiring import wire_slack
from tests.bot.live_server import LiveServer
from tests.bot.mock_slack import MockSlack
from tests.support import ROOT, FakeClock

SIGNING_SECRET = "test-signing-secret"
Run = Callable[..., tuple[int, str, str]]  # `opsloop ARGS...` -> (exit code, stdout, stderr)


@pytest.fixture
def run_cli(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """`opsloop ARGS...` in this process, on the test's database and the sample policy, with no signing
    or status key set; no traceback ever reaches its output."""
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", db_url)
    monkeypatch.setenv("OPSLOOP_CONFIG", str(ROOT / "opsloop.yml"))
    monkeypatch.setenv("OPSLOOP_RUNBOOKS_DIR", str(ROOT / "runbooks"))
    for name in ("OPSLOOP_AUDIT_SIGNING_KEY", "OPSLOOP_STATUS_KEY"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    return run


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, config=ROOT / "opsloop.yml",
                    runbooks_dir=ROOT / "runbooks", playbooks_dir=ROOT / "playbooks")


@pytest.fixture
def services(settings: Settings, clock: FakeClock) -> Iterator[Services]:
    """Everything wired as in production, on the sample policy and accounts, with a fake clock."""
    built = bootstrap(settings, clock=clock)
    yield built
    built.db.dispose()


@pytest.fixture
def mock_slack() -> Iterator[MockSlack]:
    mock = MockSlack(groups={"S0ONCALL": ["U0RESP2", "U0GROUPIE"]}).start()
    yield mock
    mock.stop()


@pytest.fixture
def slack_settings(settings: Settings, mock_slack: MockSlack) -> Settings:
    return settings.model_copy(update={
        "config": Path(__file__).with_name("slack_policy.yml"),
        "slack_bot_token": SecretStr("xoxb-test-token"),
        "slack_signing_secret": SecretStr(SIGNING_SECRET),
        "slack_api_url": mock_slack.api_url,
    })


@pytest.fixture
def slack_services(slack_settings: Settings, clock: FakeClock) -> Iterator[Services]:
    built = bootstrap(slack_settings, clock=clock)
    yield built
    built.db.dispose()


@pytest.fixture
def server(slack_services: Services, slack_settings: Settings, clock: FakeClock) -> Iterator[LiveServer]:
    """The HTTP app as `opsloop serve` builds it, wired to the mock Slack, with the fake clock."""
    dispatcher = wire_slack(slack_services, idle=0.05)
    app = create_http_app(slack_services, slack_settings, dispatcher=dispatcher)
    live = LiveServer(app, dispatcher=dispatcher, clock=clock, secret=SIGNING_SECRET).start()
    yield live
    live.stop()
