"""A maintenance window mirrored as a silence in a real Prometheus Alertmanager, expired when ended early.

Needs Debian's `prometheus-alertmanager` (`.ci/run` installs it); skipped, with
that reason, where the binary is missing.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from bot.bootstrap import Services, bootstrap
from bot.settings import Settings
from opsloop.maintenance.models import MaintenanceWindow
from opsloop.models import AuditEvent
from tests.bot.test_alertmanager_roundtrip import BINARY, running, start_alertmanager
from tests.support import ROOT, FakeClock, QuietHandler, local_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),  # the HTTP calls, not storage
]
RECEIVER = "    webhook_configs:\n      - url: http://127.0.0.1:9/nowhere\n"


def build(settings: Settings, tmp_path: Path, silence_url: str, timeout: str = "5s") -> Services:
    policy = yaml.safe_load((ROOT / "opsloop.yml").read_text())
    policy["accounts"] = str(ROOT / "accounts.yml")
    for integration in policy["integrations"]:
        if integration["kind"] == "alertmanager":
            integration["silence_url"] = silence_url
    policy["maintenance"] = {"silence_timeout": timeout}
    path = tmp_path / "opsloop.yml"
    path.write_text(yaml.safe_dump(policy))
    return bootstrap(settings.model_copy(update={"config": path}), clock=FakeClock())


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    if BINARY is None:
        pytest.skip("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager; "
                    ".ci/run does)")
    with running(start_alertmanager(tmp_path, RECEIVER)) as url:
        yield url


def test_a_window_is_mirrored_as_a_silence_and_expired_when_ended_early(
        settings: Settings, tmp_path: Path, alertmanager: str) -> None:
    services = build(settings, tmp_path, alertmanager)
    try:
        clock = services.clock
        assert isinstance(clock, FakeClock)
        # Alertmanager refuses silences that have ended: the window is set in real time
        clock.current = clock.current.replace(year=2030)
        outcome = services.maintenance.schedule(
            actor="U0RESP1", what="DB upgrade", matchers=["service=db", "env=~prod|staging", "team!=web"],
            starts="now", until="+2h")
        assert outcome.mirrored == ["prometheus"] and outcome.problems == []
        silence_id = outcome.window.silences["prometheus"]
        silence = httpx.get(f"{alertmanager}/api/v2/silence/{silence_id}", timeout=5).json()
        assert silence["status"]["state"] == "pending"  # it starts in 2030
        assert silence["comment"] == "MNT-1: DB upgrade" and silence["createdBy"] == "opsloop (U0RESP1)"
        assert sorted((m["name"], m["value"], m["isRegex"], m["isEqual"]) for m in silence["matchers"]) == [
            ("env", "prod|staging", True, True), ("service", "db", False, True), ("team", "web", False, False)]
        assert silence["startsAt"].startswith("2030-11-23T09:00:00") and silence["endsAt"].startswith(
            "2030-11-23T11:00:00")

        ended = services.maintenance.end(actor="U0RESP1", ref="MNT-1")
        assert ended.problems == []
        assert httpx.get(f"{alertmanager}/api/v2/silence/{silence_id}", timeout=5).json()["status"][
            "state"] == "expired"
        with services.db.transaction() as s:
            row = s.get(MaintenanceWindow, ended.item.id)
            assert row is not None and row.silences == {"prometheus": silence_id}
            actions = [e.action for e in s.exec(AuditEvent.__table__.select()  # type: ignore[attr-defined]
                                                .where(AuditEvent.__table__.c.subject == "MNT-1"))]
        assert "maintenance.silenced" in actions
    finally:
        services.db.dispose()


def test_a_silent_alertmanager_costs_the_timeout_and_never_the_window(settings: Settings, tmp_path: Path) -> None:
    """A far side that accepts and never answers: the call ends at its deadline; the window stands."""
    release = threading.Event()

    class Hang(QuietHandler):
        def do_POST(self) -> None:
            release.wait(30)

    server = local_server(Hang)
    services = build(settings, tmp_path, f"http://127.0.0.1:{server.server_address[1]}", timeout="1s")
    try:
        outcome = services.maintenance.schedule(actor="U0RESP1", what="x", matchers=["service=db"],
                                                starts="now", until="+1h")
        assert outcome.mirrored == [] and outcome.problems == ["prometheus: no answer in time"]
        assert services.workitems.get("MNT-1").item.state == "active"
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        services.db.dispose()


def test_an_unreachable_alertmanager_is_reported(settings: Settings, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    services = build(settings, tmp_path, f"http://127.0.0.1:{port}")
    try:
        reply = services.commands.handle("/maintenance", 'schedule "x" service=db until +1h', actor="U0RESP1")
        assert "⚠️ Alertmanager silence: prometheus: unreachable (ConnectError) (opsloop holds the alerts " \
               "anyway)." in reply.text
    finally:
        services.db.dispose()
