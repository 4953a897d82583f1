"""`opsloop oncall refresh`: the feed is read, its emails looked up in Slack (users.lookupByEmail) or in
users.csv, stored for every replica; `/oncall` then answers from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.bootstrap import bootstrap
from bot.cli import main
from bot.settings import Settings
from opsloop.errors import ConfigError
from tests.bot.mock_slack import MockSlack
from tests.core.feeds.test_oncall_ical import FEED
from tests.support import FakeClock


@pytest.fixture
def feed_settings(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    (tmp_path / "sre.ics").write_text(FEED, encoding="utf-8")
    policy = {"timezone": "Europe/Berlin", "channels": {"ops": "C0OPS"}, "oncall": {"sre": {"ical": "sre.ics"}}}
    (tmp_path / "opsloop.yml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    (tmp_path / "runbooks").mkdir()
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("OPSLOOP_CONFIG", str(tmp_path / "opsloop.yml"))
    monkeypatch.setenv("OPSLOOP_RUNBOOKS_DIR", str(tmp_path / "runbooks"))
    return settings.model_copy(update={"config": tmp_path / "opsloop.yml", "runbooks_dir": tmp_path / "runbooks"})


def test_refresh_maps_emails_through_slack_and_names_through_users_csv(
    feed_settings: Settings, mock_slack: MockSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    monkeypatch.setenv("OPSLOOP_SLACK_API_URL", mock_slack.api_url)
    mock_slack.emails.update({"alice@example.com": "U0ALICE", "bob@example.com": "U0BOB"})
    users = tmp_path / "users.csv"
    users.write_text("email,slack_id,name\ndave@example.com,U0DAVE,Dave Jones\n", encoding="utf-8")
    assert main(["oncall", "refresh", "--users", str(users)]) == 0
    assert capsys.readouterr().out.startswith(f"sre: {tmp_path / 'sre.ics'} loaded: ")
    asked = sorted(c.params["email"] for c in mock_slack.ok_calls("users.lookupByEmail"))
    assert asked == ["alice@example.com", "bob@example.com"]
    assert main(["oncall", "refresh"]) == 0  # the same file again: nothing to do, nobody asked again
    assert " unchanged: " in capsys.readouterr().out
    assert len(mock_slack.all_calls("users.lookupByEmail")) == 2
    # a running bot (here the console's services, started after) answers /oncall from the stored feed
    services = bootstrap(feed_settings.model_copy(update={"slack_bot_token": None}), clock=FakeClock())
    reply = services.commands.handle("/oncall", "sre", actor="U0ANY")  # Mon 23 Nov, 10:00 in Berlin
    assert reply.text == ("*sre*: <@U0BOB> is on call until Mon 2026-11-30 09:00 CET; "
                          "next: <@U0ALICE> until Mon 2026-12-07 09:00 CET")
    services.db.dispose()


def test_refresh_refuses_an_unmapped_person_and_an_unknown_team(
    feed_settings: Settings, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["oncall", "refresh"]) == 2  # no Slack token, no users.csv: the emails stay unmapped
    err = capsys.readouterr().err
    assert "oncall.sre.ical" in err and "cannot be mapped to a Slack user" in err and "bob@example.com" in err
    assert main(["oncall", "refresh", "qa"]) == 2
    assert "not an iCal-fed on-call team: qa (feeds: sre)" in capsys.readouterr().err


def test_start_is_refused_while_no_feed_could_be_loaded(feed_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="cannot be mapped to a Slack user"):
        bootstrap(feed_settings, clock=FakeClock())
