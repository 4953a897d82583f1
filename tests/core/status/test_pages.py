"""What the status pages show (and do not), as the HTML and Atom a reader gets."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from xml.etree import ElementTree

from opsloop.comms.models import PublicItem, PublicUpdate
from opsloop.core import Core
from opsloop.models import Account
from opsloop.present import status_pages as present
from opsloop.types import Severity
from opsloop.workitems import find
from tests.support import FakeClock

R = "U0RESP1"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"


class Outline(HTMLParser):
    """The tags and text of a page, and whether every opened element was closed."""

    VOID = {"meta", "link", "br", "img", "hr", "input"}

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.open: list[str] = []
        self.text: list[str] = []
        self.attrs: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        if not self.open or self.open[-1] not in ("style", "title"):
            self.text.append(data)

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


def story(services: Core, clock: FakeClock) -> None:
    """Acme and Globex share an outage that is resolved; Acme alone has a partial outage open now."""
    clock.current = T0
    wi = services.workitems
    wi.declare(actor=R, title="EU primary db-eu-1 down (internal)", severity=Severity.SEV1,
               tenants=["acme", "globex"])
    clock.advance(minutes=20)
    wi.act(actor=R, ref="INC-1", action="mitigate")
    clock.advance(minutes=40)
    wi.act(actor=R, ref="INC-1", action="resolve")
    clock.advance(hours=3)
    wi.declare(actor=R, title="search-7f9 pods crash looping", severity=Severity.SEV2, tenants=["acme"])
    clock.advance(minutes=15)


def test_a_tenants_page_shows_its_incidents_and_availability_and_nothing_internal(
        services: Core, clock: FakeClock) -> None:
    story(services, clock)
    page = services.status_pages.tenant(services.status_links.link("acme", actor="system:cli"))
    assert page is not None
    html = present.tenant_html(page, feed_url="TOKEN/feed.atom")
    outline = Outline(html)
    assert outline.open == []  # every element closed
    words = outline.words
    assert "Service status for Acme Corp" in words
    assert "1 incident in progress" in words
    assert "Partial outage — Investigating" in words and "Started 2026-11-20 13:00 UTC" in words
    assert "Service outage — Resolved" in words
    assert "resolved 2026-11-20 10:00 UTC" in words
    # 20 min of outage + 15 min of partial outage at 30%: 24.5 min of 90 days
    assert "Availability 99.981%" in words and "Contract 99.99%" in words
    assert "Against the contract Below the contract" in words and "24m30s of 12m58s allowed" in words
    for internal in ("db-eu-1", "search-7f9", "INC-1", "INC-2", "U0RESP1", "Globex", "globex", "acme"):
        assert internal not in html, internal
    assert "script" not in outline.tags and "img" not in outline.tags
    assert outline.tags.count("h1") == 1 and "main" in outline.tags
    assert ("html", {"lang": "en"}) in outline.attrs


def test_the_inline_style_is_the_one_the_policy_allows_and_nothing_else_is(services: Core) -> None:
    html = present.public_html(services.status_pages.public(), feed_url="status/feed.atom")
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in present.CSP
    assert present.CSP.startswith("default-src 'none';") and "frame-ancestors 'none'" in present.CSP
    assert "unsafe" not in present.CSP and "script-src" not in present.CSP  # default-src 'none' covers it
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # no asset from elsewhere


def test_a_name_full_of_markup_is_text_and_control_characters_are_dropped(
        services: Core, clock: FakeClock) -> None:
    with services.db.transaction() as s:
        s.add(Account(id="evil", name='<script>alert(1)</script> & "Co"\x08\x1b', tier="smb"))
    services.workitems.declare(actor=R, title="x", severity=Severity.SEV1, tenants=["evil"])
    page = services.status_pages.tenant(services.status_links.link("evil", actor="system:cli"))
    assert page is not None
    html = present.tenant_html(page, feed_url="t/feed.atom")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;Co&#34;" in html
    assert "\x08" not in html and "\x1b" not in html
    feed = present.atom(page.incidents, title=f"Service status for {page.name}", key=page.feed_key, at=page.at,
                        page_url="https://s.example/status/t/x", self_url="https://s.example/status/t/x/feed.atom")
    root = ElementTree.fromstring(feed)  # well-formed, whatever the name held
    assert root.findtext(f"{ATOM}title") == 'Service status for <script>alert(1)</script> & "Co"'


def test_the_atom_feed_has_an_entry_per_incident_newest_change_first(services: Core, clock: FakeClock) -> None:
    story(services, clock)
    page = services.status_pages.tenant(services.status_links.link("acme", actor="system:cli"))
    assert page is not None
    root = ElementTree.fromstring(present.atom(
        page.incidents, title="Service status for Acme Corp", key=page.feed_key, at=page.at,
        page_url="https://s.example/status/t/T", self_url="https://s.example/status/t/T/feed.atom"))
    assert root.tag == f"{ATOM}feed"
    entries = root.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == ["Partial outage — Investigating",
                                                            "Service outage — Resolved"]
    assert root.findtext(f"{ATOM}updated") == "2026-11-20T13:00:00Z"
    ids = [e.findtext(f"{ATOM}id") for e in entries]
    assert all(i and i.startswith("urn:uuid:") for i in ids) and len(set(ids)) == 2
    links = [e.find(f"{ATOM}link") for e in entries]
    assert all(link is not None and link.get("href", "").startswith("https://s.example/status/t/T#incident-")
               for link in links)
    assert "INC-" not in ElementTree.tostring(root, encoding="unicode")
    # the same incident keeps its entry id when the page is built again (feed readers dedupe on it)
    again = services.status_pages.tenant(services.status_links.link("acme", actor="system:cli"))
    assert again is not None and [i.key for i in again.incidents] == [i.key for i in page.incidents]


def test_the_not_found_page_is_a_page() -> None:
    outline = Outline(present.not_found_html())
    assert "Page not found" in outline.words and outline.open == []


def approve(services: Core, ref: str, text: str, *, tenant: str | None = None, state: str = "triggered",
            minutes: int = 1) -> None:
    """An update a person approved (what the review flow stores when someone presses Send)."""
    with services.db.transaction() as s:
        item = find(s, ref)
        assert item.id is not None
        s.add(PublicUpdate(work_item_id=item.id, tenant_id=tenant, state=state, event="update", text=text,
                           approved_by=R, approved_at=services.clock.now() + timedelta(minutes=minutes)))


def mark_public(services: Core, ref: str) -> None:
    with services.db.transaction() as s:
        item = find(s, ref)
        assert item.id is not None
        s.add(PublicItem(work_item_id=item.id, set_by=R, set_at=services.clock.now()))


def test_pages_show_the_approved_updates_meant_for_them_and_only_those(
        services: Core, clock: FakeClock) -> None:
    story(services, clock)  # INC-1 (acme, globex) resolved, INC-2 (acme) open
    approve(services, "INC-1", "Payments were failing; we moved traffic to another region.", state="mitigated")
    approve(services, "INC-1", "Your nightly export will be re-run at 02:00.", tenant="globex", minutes=2)
    approve(services, "INC-1", "Globex and Acme Corp are affected.", minutes=3)  # names tenants: never shown
    approve(services, "INC-2", "Search is slow; we are adding capacity.")
    acme = services.status_pages.tenant(services.status_links.link("acme", actor="system:cli"))
    globex = services.status_pages.tenant(services.status_links.link("globex", actor="system:cli"))
    assert acme is not None and globex is not None
    acme_words = Outline(present.tenant_html(acme, feed_url="t/feed.atom")).words
    globex_words = Outline(present.tenant_html(globex, feed_url="t/feed.atom")).words
    assert "Monitoring · 2026-11-20 13:16 UTC Payments were failing" in acme_words
    assert "Search is slow; we are adding capacity." in acme_words
    assert "nightly export" not in acme_words  # Globex's own update stays on Globex's page
    assert "nightly export" in globex_words and "Payments were failing" in globex_words
    assert "Search is slow" not in globex_words  # INC-2 never touched Globex
    assert "are affected" not in acme_words + globex_words
    # in the feed each incident's entry carries its updates
    entry = next(i for i in acme.incidents if not i.is_open)
    assert [u.text[:8] for u in entry.updates] == ["Payments"]
    feed = present.atom(acme.incidents, title="t", key=acme.feed_key, at=acme.at, page_url="https://s/p",
                        self_url="https://s/p/feed.atom").decode()
    assert "Search is slow; we are adding capacity." in feed and "nightly export" not in feed


def test_the_public_page_shows_items_marked_public_with_updates_for_everyone_and_no_tenant(
        services: Core, clock: FakeClock) -> None:
    story(services, clock)
    approve(services, "INC-1", "Payments were failing; we moved traffic to another region.")
    approve(services, "INC-1", "Your nightly export will be re-run at 02:00.", tenant="globex", minutes=2)
    approve(services, "INC-2", "Search is slow; we are adding capacity.")
    assert services.status_pages.public().incidents == []  # nothing is public until someone says so
    mark_public(services, "INC-1")
    page = services.status_pages.public()
    words = Outline(present.public_html(page, feed_url="status/feed.atom")).words
    assert "No known incidents right now" in words
    assert "Service outage — Resolved" in words and "Payments were failing" in words
    for hidden in ("nightly export", "Search is slow", "Acme", "acme", "Globex", "globex", "db-eu-1", "INC-1"):
        assert hidden not in words, hidden
