"""Address checks without a database: every address a name resolves to is checked."""

from __future__ import annotations

import httpx
import pytest

from opsloop.remediation.config import Actions
from opsloop.remediation.safety import Refused, check_url


class Names:
    def __init__(self, **names: list[str]) -> None:
        self.names = names

    def resolve(self, host: str, port: int) -> list[str]:
        return self.names.get(host.replace(".", "_"), [])


ACTIONS = Actions(allow_hosts=["api.internal", "*.ops.internal", "127.0.0.1", "fe80::1", "::ffff:169.254.169.254"])


@pytest.mark.parametrize(("url", "resolves", "why"), [
    ("https://api.internal/x", ["fe80::abcd"], "resolves to fe80::abcd, which is link-local"),
    ("https://api.internal/x", ["10.0.0.1", "fd00:ec2::254"], "fd00:ec2::254, which is a cloud metadata"),
    ("https://api.internal/x", ["127.0.0.1"], "is a loopback address"),
    ("https://127.0.0.1/x", [], "127.0.0.1 is a loopback address"),
    ("https://[fe80::1]/x", [], "is link-local"),
    ("https://[::ffff:169.254.169.254]/x", [], "is a cloud metadata address"),
    ("https://other.internal/x", ["10.0.0.1"], "not in actions.allow_hosts"),
    ("https://api.internal/⟦secret:T⟧", ["10.0.0.1"], "secrets cannot be part of the URL"),
    ("ftp://api.internal/x", ["10.0.0.1"], "only https and http"),
])
def test_refused(url: str, resolves: list[str], why: str) -> None:
    with pytest.raises(Refused, match=why.replace("(", r"\(").replace(")", r"\)")):
        check_url(httpx.URL(url), ACTIONS, Names(api_internal=resolves))


def test_allowed_names_pin_the_checked_address_and_wildcards_match_subdomains_only() -> None:
    target = check_url(httpx.URL("https://db.ops.internal:8443/x"), ACTIONS,
                       Names(db_ops_internal=["10.0.0.7", "10.0.0.8"]))
    assert (target.host, target.port, target.address) == ("db.ops.internal", 8443, "10.0.0.7")
    assert str(target.pinned(httpx.URL("https://db.ops.internal:8443/x"))) == "https://10.0.0.7:8443/x"
    with pytest.raises(Refused, match=r"not in actions\.allow_hosts"):
        check_url(httpx.URL("https://ops.internal.evil.com/x"), ACTIONS, Names())
    loopback = Actions(allow_hosts=["localhost"], allow_loopback=True)
    assert check_url(httpx.URL("http://localhost/x"), loopback, Names(localhost=["127.0.0.1"])).address == "127.0.0.1"


class NoNames:
    """An address written in the URL is never looked up."""

    def resolve(self, host: str, port: int) -> list[str]:
        raise AssertionError(f"{host} was resolved")


@pytest.mark.parametrize(("url", "allowed", "why"), [
    # bracketed IPv6 literals are judged as the addresses they are, before (and whatever) the allow-list
    ("http://[fd00:ec2::254]/", [], "fd00:ec2::254 is a cloud metadata address; refused"),
    ("http://[fd00:ec2::254]/", ["fd00:ec2::254"], "fd00:ec2::254 is a cloud metadata address; refused"),
    ("http://[FD00:EC2:0::254]:8080/x", ["[fd00:ec2::254]"], "is a cloud metadata address; refused"),
    ("http://[::ffff:127.0.0.1]/", [], "::ffff:127.0.0.1 carries the IPv4 address 127.0.0.1, which is a "
                                       "loopback address (set actions.allow_loopback to call one); refused"),
    ("http://[::ffff:127.0.0.1]/", ["[::ffff:127.0.0.1]"], "carries the IPv4 address 127.0.0.1, which is a loopback"),
    ("http://[::ffff:7f00:1]/", ["::ffff:7f00:1"], "carries the IPv4 address 127.0.0.1, which is a loopback"),
    ("http://[::ffff:a9fe:a9fe]/", [], "carries the IPv4 address 169.254.169.254, which is a cloud metadata"),
    ("http://[fe80::1%25eth0]/", [], "is link-local; refused"),
    ("http://[::]/", ["::"], "is not a unicast address; refused"),
])
def test_an_ipv6_literal_is_refused_for_what_it_is(url: str, allowed: list[str], why: str) -> None:
    with pytest.raises(Refused, match=why.replace("(", r"\(").replace(")", r"\)")):
        check_url(httpx.URL(url), Actions(allow_hosts=allowed), NoNames())


def test_an_allowed_ipv6_literal_matches_however_either_is_written_and_is_pinned() -> None:
    for allowed in ("2001:db8::10", "[2001:DB8:0::10]"):
        target = check_url(httpx.URL("https://[2001:db8:0:0::10]:8443/x"), Actions(allow_hosts=[allowed]),
                           NoNames())
        assert (target.address, target.port) == ("2001:db8::10", 8443)
    with pytest.raises(Refused, match=r"2001:db8::11 is not in actions\.allow_hosts"):
        check_url(httpx.URL("https://[2001:db8::11]/x"), Actions(allow_hosts=["2001:db8::10"]), NoNames())
