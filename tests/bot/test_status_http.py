"""The status pages over HTTP, on the real app: who gets which page, what every wrong request gets."""

from __future__ import annotations

from collections.abc import Iterator
from xml.etree import ElementTree

import pytest

from bot.bootstrap import Services
from bot.settings import Settings
from opsloop.types import Severity
from tests.bot.e2e import serve
from tests.bot.live_server import LiveServer
from tests.support import ROOT, FakeClock

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the HTTP surface, not storage


@pytest.fixture
def served(slack_settings: Settings, clock: FakeClock) -> Iterator[tuple[Services, LiveServer]]:
    with serve(slack_settings.model_copy(update={"config": ROOT / "opsloop.yml"}), clock,
               scheduler=False) as served:
        yield served


def test_a_tenant_link_opens_its_page_and_feed_until_revoked(served: tuple[Services, LiveServer]) -> None:
    services, live = served
    services.workitems.declare(actor="U0RESP1", title="Checkout 500s", severity=Severity.SEV1, tenants=["acme"])
    token = services.status_links.link("acme", actor="system:cli")
    page = live.get(f"/status/t/{token}")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "Service status for Acme Corp" in page.text and "Service outage" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none';")
    assert page.headers["cache-control"] == "private, no-store"
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-robots-tag"] == "noindex, nofollow"
    assert f'href="{token}/feed.atom"' in page.text
    feed = live.get(f"/status/t/{token}/feed.atom")
    assert feed.status_code == 200 and feed.headers["content-type"] == "application/atom+xml; charset=utf-8"
    root = ElementTree.fromstring(feed.content)
    self_link = [link.get("href") for link in root.iter("{http://www.w3.org/2005/Atom}link")
                 if link.get("rel") == "self"]
    assert self_link == [f"https://opsloop.example.com/status/t/{token}/feed.atom"]  # status.base_url
    assert live.client is not None and live.client.head(f"/status/t/{token}").status_code == 200

    wrong_path = live.get("/no/such/page")
    services.status_links.revoke("acme", actor="system:cli")
    for path in (f"/status/t/{token}", f"/status/t/{token}/feed.atom"):
        revoked = live.get(path)
        assert revoked.status_code == 404
        assert revoked.text == wrong_path.text and "Page not found" in revoked.text  # the same 404
        assert revoked.headers["content-security-policy"] == wrong_path.headers["content-security-policy"]


@pytest.mark.parametrize("path", [
    "/status/t/", "/status/t/nope", "/status/t/" + "a" * 5000, "/status/t/%00%01", "/status/t/..%2F..%2Fetc",
    "/status/t/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
    "/status/t/%F0%9F%92%A5%F0%9F%92%A5", "/status/t/x/feed.atom", "/status/x", "/statusx"])
def test_a_wrong_token_or_path_gets_the_404_page_never_an_error(served: tuple[Services, LiveServer],
                                                                 path: str) -> None:
    _, live = served
    expected = live.get("/definitely-not-here").text
    answer = live.get(path)
    assert answer.status_code == 404 and answer.text == expected


def test_the_public_page_answers_and_other_methods_are_refused(served: tuple[Services, LiveServer]) -> None:
    _, live = served
    page = live.get("/status?x=<script>&y=%00")
    assert page.status_code == 200 and "<script>" not in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none';")
    assert live.client is not None
    assert live.client.post("/status", content=b"x" * 10).status_code == 405
    feed = live.get("/status/feed.atom")
    assert feed.status_code == 200 and ElementTree.fromstring(feed.content).tag.endswith("feed")


def test_metrics_never_carry_a_token(served: tuple[Services, LiveServer]) -> None:
    services, live = served
    token = services.status_links.link("acme", actor="system:cli")
    live.get(f"/status/t/{token}")
    metrics = live.get("/metrics").text
    assert token not in metrics and 'route="/status/t",status="200"' in metrics
