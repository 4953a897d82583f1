"""Tenant status links: signed, stable until revoked, revocable, never telling whose they are."""

from __future__ import annotations

import string

import pytest
from sqlmodel import col, select

from opsloop.core import Core
from opsloop.errors import NotFound
from opsloop.models import AuditEvent
from opsloop.status.links import StatusLinks
from opsloop.status.models import StatusKey


def test_a_link_opens_its_tenants_page_until_revoked_and_a_new_one_follows(services: Core) -> None:
    links = services.status_links
    token = links.link("acme", actor="system:cli")
    assert links.link("acme", actor="system:cli") == token  # printing it again hands out the same link
    assert links.tenant_of(token) == "acme"
    assert "acme" not in token.lower()  # the token names nobody
    assert links.revoke("acme", actor="system:cli") == 1
    assert links.tenant_of(token) is None
    assert links.revoke("acme", actor="system:cli") == 0  # nothing left to revoke
    again = links.link("acme", actor="system:cli")
    assert again != token and links.tenant_of(again) == "acme" and links.tenant_of(token) is None
    with services.db.transaction() as s:
        actions = s.exec(select(AuditEvent.action, AuditEvent.actor, AuditEvent.subject)
                         .where(col(AuditEvent.action).startswith("status.")).order_by(col(AuditEvent.seq))).all()
    assert actions == [("status.link.created", "system:cli", "tenant:acme"),
                       ("status.link.revoked", "system:cli", "tenant:acme"),
                       ("status.link.created", "system:cli", "tenant:acme")]


def test_links_of_two_tenants_open_only_their_own_pages(services: Core) -> None:
    acme, globex = (services.status_links.link(t, actor="system:cli") for t in ("acme", "globex"))
    services.status_links.revoke("acme", actor="system:cli")
    assert services.status_links.tenant_of(globex) == "globex"  # revoking one leaves the other
    assert services.status_links.tenant_of(acme) is None


@pytest.mark.parametrize("bad", ["", "x", "a" * 500, "not-a-token", "../../etc/passwd", "abc.def",
                                 "AAAAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBB", "é" * 30 + "." + "é" * 30,
                                 "\x00" * 40])
def test_anything_but_a_live_token_opens_nothing(services: Core, bad: str) -> None:
    services.status_links.link("acme", actor="system:cli")
    assert services.status_links.tenant_of(bad) is None


BASE64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def test_a_tampered_token_opens_nothing(services: Core) -> None:
    token = services.status_links.link("acme", actor="system:cli")
    nonce, _, signature = token.partition(".")
    assert services.status_links.tenant_of(token) == "acme"
    # every other character at the start, the middle and the end; the last one holds spare bits, so
    # three other spellings of it decode to the same signature: they must be refused all the same
    for at in (0, len(signature) // 2, len(signature) - 1):
        for other in BASE64URL.replace(signature[at], ""):
            flipped = signature[:at] + other + signature[at + 1:]
            assert services.status_links.tenant_of(f"{nonce}.{flipped}") is None, (at, other)
    assert services.status_links.tenant_of(f"{nonce}x.{signature}") is None


def test_unknown_tenants_are_refused(services: Core) -> None:
    with pytest.raises(NotFound, match="unknown tenant 'nobody'"):
        services.status_links.link("nobody", actor="system:cli")
    with pytest.raises(NotFound):
        services.status_links.revoke("nobody", actor="system:cli")


def test_the_key_comes_from_the_environment_or_is_made_once_and_kept(services: Core) -> None:
    token = services.status_links.link("acme", actor="system:cli")
    with services.db.transaction() as s:
        kept = s.exec(select(StatusKey)).all()
    assert len(kept) == 1 and len(kept[0].key) >= 48
    # another replica (a fresh service on the same database) reads the same key
    other = StatusLinks(services.db, services.policy, services.clock)
    assert other.tenant_of(token) == "acme"
    # a key from OPSLOOP_STATUS_KEY: links signed with the stored key no longer open (rotation revokes all)
    given = StatusLinks(services.db, services.policy, services.clock, key="k" * 40)
    assert given.tenant_of(token) is None
    fresh = given.link("globex", actor="system:cli")
    assert given.tenant_of(fresh) == "globex" and other.tenant_of(fresh) is None


def test_the_url_starts_with_the_policys_base(services: Core) -> None:
    token = services.status_links.link("acme", actor="system:cli")
    assert services.status_links.url(token) == f"https://opsloop.example.com/status/t/{token}"
