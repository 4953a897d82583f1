"""The status pages in a real browser: Debian's Chromium, driven by Playwright (nothing downloads a browser).

Each test serves the real app (`opsloop serve`'s) on a loopback port, opens
pages as a customer would, reads what is on the screen, and writes a
screenshot of each page under the test's own output directory (tmp_path).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.bootstrap import Services
from bot.settings import Settings
from opsloop.types import Severity
from tests.bot.e2e import serve
from tests.core.status.test_pages import approve, mark_public
from tests.support import ROOT, FakeClock

CHROMIUM = "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
    pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                       reason=f"no system Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"),
]
R = "U0RESP1"


@pytest.fixture
def served(slack_settings: Settings, clock: FakeClock) -> Iterator[tuple[Services, str]]:
    with serve(slack_settings.model_copy(update={"config": ROOT / "opsloop.yml"}), clock,
               scheduler=False) as (services, live):
        assert live.client is not None
        yield services, str(live.client.base_url).rstrip("/")


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


def visit(browser: Any, url: str, shot: Path) -> tuple[int, str, list[str]]:
    """Open `url`; its status, the text on screen, and what the console complained of (CSP refusals)."""
    page = browser.new_page(java_script_enabled=False)  # the pages need none
    complaints: list[str] = []
    page.on("console", lambda message: complaints.append(message.text))
    answer = page.goto(url)
    assert answer is not None
    page.screenshot(path=str(shot), full_page=True)
    text = page.inner_text("body")
    page.close()
    assert shot.stat().st_size > 1000
    return answer.status, text, complaints


def test_a_tenant_sees_its_incident_and_never_another_tenants(
        served: tuple[Services, str], browser: Any, tmp_path: Path) -> None:
    services, base = served
    wi = services.workitems
    wi.declare(actor=R, title="Acme checkout db-eu-1 down", severity=Severity.SEV1, tenants=["acme"])
    wi.declare(actor=R, title="Globex reports slow exports", severity=Severity.SEV2, tenants=["globex"])
    approve(services, "INC-1", "Checkout is failing; we are moving traffic to another region.")
    approve(services, "INC-2", "Exports are slow; a fix is rolling out.")
    acme = services.status_links.url(services.status_links.link("acme", actor="system:cli"))
    status, text, complaints = visit(browser, base + acme.removeprefix("https://opsloop.example.com"),
                                     tmp_path / "tenant-acme.png")
    assert status == 200
    assert "Service status for Acme Corp" in text and "Service outage — Investigating" in text
    assert "Checkout is failing; we are moving traffic to another region." in text
    assert "Availability" in text and "Contract" in text and "99.99%" in text
    for foreign in ("Globex", "globex", "Partial outage", "Exports are slow", "db-eu-1", "INC-1", "INC-2"):
        assert foreign not in text, foreign
    assert complaints == []  # nothing the policy had to refuse: no inline style or asset outside it


def test_the_public_page_names_no_tenant(served: tuple[Services, str], browser: Any, tmp_path: Path) -> None:
    services, base = served
    services.workitems.declare(actor=R, title="Acme down", severity=Severity.SEV1, tenants=["acme", "initech"])
    services.workitems.declare(actor=R, title="Globex only", severity=Severity.SEV2, tenants=["globex"])
    approve(services, "INC-1", "Logins are failing for some customers; we are on it.")
    approve(services, "INC-1", "Your SSO will need a re-sync.", tenant="initech")
    approve(services, "INC-2", "Exports are slow.")
    mark_public(services, "INC-1")
    status, text, complaints = visit(browser, base + "/status", tmp_path / "public.png")
    assert status == 200 and "Service status" in text and "1 incident in progress" in text
    assert "Service outage — Investigating" in text and "Logins are failing for some customers" in text
    assert "SSO" not in text and "Exports are slow" not in text  # one tenant's update; an item not public
    for name in ("Acme", "acme", "Initech", "initech", "Globex", "globex"):
        assert name not in text, name
    assert complaints == []


def test_a_revoked_link_shows_the_404_page(served: tuple[Services, str], browser: Any, tmp_path: Path) -> None:
    services, base = served
    path = services.status_links.url(services.status_links.link("globex", actor="system:cli")) \
        .removeprefix("https://opsloop.example.com")
    assert visit(browser, base + path, tmp_path / "before-revoke.png")[0] == 200
    services.status_links.revoke("globex", actor="system:cli")
    status, text, _ = visit(browser, base + path, tmp_path / "revoked.png")
    assert status == 404 and "Page not found" in text and "Globex" not in text
    wrong_status, wrong_text, _ = visit(browser, base + "/status/t/typo", tmp_path / "wrong-path.png")
    assert (wrong_status, wrong_text) == (status, text)  # revoked looks exactly like a wrong address
