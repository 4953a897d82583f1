"""The official `pagerduty` client (7.x), over HTTPS, against `opsloop serve`: only the base URL changes.

`opsloop serve --ssl-certfile --ssl-keyfile` runs as the real command line does, with a certificate
from a throwaway CA (trustme) that the client is told to trust.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pagerduty
import pytest
import trustme

from bot.cli import main
from tests.bot.mock_slack import MockSlack
from tests.bot.processes import free_port, rows, serve_env, wait_ready
from tests.support import wait_until

pytestmark = pytest.mark.slow
KEY = "pd-routing-key-0123456789abcdef"


@dataclass
class Served:
    base: str  # the Events API base URL a PagerDuty client is given
    tls: ssl.SSLContext  # trusts the throwaway CA
    database: str

    def rows(self, query: str) -> list[tuple[object, ...]]:
        """What `query` finds once every accepted event has been processed (the server answers when
        an event is stored, and turns it into incidents right after)."""
        wait_until(lambda: rows(self.database, "SELECT count(*) FROM intake_inbox") == [(0,)],
                   what="the accepted events to be processed")
        return rows(self.database, query)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(keyfile))
    tls = ssl.create_default_context()
    ca.configure_trust(tls)
    mock = MockSlack().start()
    database = f"sqlite:///{tmp_path / 'opsloop.db'}"
    port = free_port()
    env = serve_env(database, mock.api_url, SLACK_SIGNING_SECRET="test-secret", OPSLOOP_ROUTING_KEY_MONITORS=KEY,
                    OPSLOOP_LOG_LEVEL="ERROR")
    log = tmp_path / "serve.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", str(port), "--ssl-certfile", str(certfile),
         "--ssl-keyfile", str(keyfile)], env=env, cwd=tmp_path, stderr=log.open("wb"))
    try:
        wait_ready(server, lambda: httpx.get(f"https://localhost:{port}/healthz", verify=tls, timeout=1),
                   what="opsloop serve", said=log.read_text)
        yield Served(f"https://localhost:{port}/hooks/events", tls, database)
    finally:
        server.terminate()
        try:
            server.wait(timeout=90)
        except subprocess.TimeoutExpired:
            server.kill()
            raise AssertionError(f"opsloop serve did not stop on SIGTERM: {log.read_text()[-800:]}") from None
        finally:
            mock.stop()


def test_the_official_client_drives_an_incident_by_changing_only_the_base_url(served: Served) -> None:
    with pagerduty.EventsApiV2Client(KEY, base_url=served.base, verify=served.tls) as client:
        drive(client, served)


def drive(client: pagerduty.EventsApiV2Client, served: Served) -> None:
    details = {"tenant": "acme", "service": "checkout-api"}
    links = [{"href": "https://grafana.example/d/checkout", "text": "Checkout dashboard"}]
    key = client.trigger("Checkout 5xx above 5%", "checkout-7f9", dedup_key="checkout-5xx",
                         custom_details=details, links=links,
                         images=[{"src": "https://grafana.example/render/p99.png", "alt": "p99"}])
    assert key == "checkout-5xx"
    assert client.trigger("Checkout 5xx above 5%", "checkout-7f9", dedup_key=key,
                          custom_details=details) == key  # re-trigger while open: deduplicated
    incidents = "SELECT ref, state, owner FROM work_items ORDER BY id"
    assert served.rows(incidents) == [("INC-1", "triggered", None)]
    assert served.rows("SELECT tenant_id FROM work_item_tenants") == [("acme",)]
    [(labels,)] = served.rows("SELECT labels FROM work_items")
    assert '"service": "checkout-api"' in str(labels) and '"tenant": "acme"' in str(labels)

    client.acknowledge(key)
    assert served.rows(incidents) == [("INC-1", "acknowledged", None)]  # acknowledged, and nobody's
    client.resolve(key)
    assert served.rows(incidents) == [("INC-1", "resolved", None)]
    assert client.trigger("Checkout 5xx above 5%", "checkout-7f9", dedup_key=key, custom_details=details) == key
    assert served.rows(incidents) == [("INC-1", "resolved", None), ("INC-2", "triggered", None)]
    generated = client.trigger("Disk 91% full", "db-2", severity="warning")
    assert len(generated) == 32

    client.submit("deploy v1.4.2", source="ci", custom_details={"service": "checkout-api"},
                  links=[{"href": "https://ci.example/run/9", "text": "pipeline"}],
                  timestamp=datetime.now(UTC).isoformat())
    assert served.rows("SELECT summary, source, service FROM change_events") == [
        ("deploy v1.4.2", "ci", "checkout-api")]


def test_a_wrong_routing_key_is_refused_by_the_client(served: Served) -> None:
    with pagerduty.EventsApiV2Client("not-the-key", base_url=served.base, verify=served.tls) as client, \
            pytest.raises(pagerduty.Error):
        client.trigger("x", "y")
    assert served.rows("SELECT count(*) FROM work_items") == [(0,)]


def test_serve_refuses_half_a_tls_setup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not used")
    assert main(["serve", "--ssl-certfile", str(cert)]) == 2
    assert "--ssl-certfile and --ssl-keyfile go together" in capsys.readouterr().err
    assert main(["serve", "--ssl-certfile", str(cert), "--ssl-keyfile", str(tmp_path / "missing.pem")]) == 2
    assert "missing.pem: No such file or directory" in capsys.readouterr().err
