"""`POST /hooks/heartbeat/NAME` over HTTP: the heartbeat integration's bearer token, then the name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.bootstrap import Services, bootstrap
from bot.http import create_http_app
from bot.settings import Settings
from bot.slack.wiring import wire_slack
from tests.bot.live_server import LiveServer
from tests.core.heartbeats.test_heartbeats import START, policy_with_heartbeats, state
from tests.support import FakeClock

TOKEN = "beats-token-0123456789"
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the HTTP surface, not storage


@pytest.fixture
def beats(monkeypatch: pytest.MonkeyPatch, slack_settings: Settings, tmp_path: Path) -> Iterator[
        tuple[Services, LiveServer]]:
    monkeypatch.setenv("OPSLOOP_TOKEN_BEATS", TOKEN)
    clock = FakeClock(START)
    services = bootstrap(slack_settings.model_copy(update={"config": policy_with_heartbeats(tmp_path)}),
                         clock=clock)
    services.heartbeats.arm()
    dispatcher = wire_slack(services, idle=0.05)
    live = LiveServer(create_http_app(services, slack_settings, dispatcher=dispatcher), dispatcher=dispatcher,
                      clock=clock, secret="unused").start()
    yield services, live
    live.stop()
    services.db.dispose()


def test_a_check_in_needs_the_token_and_a_known_name(beats: tuple[Services, LiveServer]) -> None:
    services, live = beats
    assert live.client is not None
    url = "/hooks/heartbeat/queue-worker"
    assert live.client.post(url).status_code == 401
    assert live.client.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert state(services, "queue-worker").checkins == 0  # refused: nothing changed
    auth = {"Authorization": f"Bearer {TOKEN}"}
    unknown = live.client.post("/hooks/heartbeat/nope", headers=auth)
    assert unknown.status_code == 404 and "no heartbeat 'nope'" in unknown.json()["error"]
    ok = live.client.post(url, headers=auth, content=b"anything at all")
    assert ok.status_code == 200
    assert ok.json() == {"status": "ok", "heartbeat": "queue-worker", "next_due": "2026-11-23T09:06:00+00:00",
                         "resolved": None}
    assert state(services, "queue-worker").checkins == 1
    too_big = live.client.post(url, headers=auth, content=b"x" * (1024 * 1024 + 1))
    assert too_big.status_code == 413
