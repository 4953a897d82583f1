"""Where an `http` step may go: allow-listed hosts, never link-local, loopback or metadata addresses.

The host of a rendered request must be in `actions.allow_hosts`. Its name is
then resolved (through an injectable `Resolver`, `socket.getaddrinfo` in
production) and EVERY address it resolves to is checked; one bad address
refuses the call, so a name that also points at 169.254.169.254 cannot slip
through round-robin. An address written in the URL itself (`[fd00:ec2::254]`,
`[::ffff:127.0.0.1]`) is judged before the allow-list, so its refusal says what
it is whatever the list holds; an allow-listed address matches however either
is written (`[FD00:0::1]` is `fd00::1`).

An IPv6 address that carries an IPv4 one (IPv4-mapped `::ffff:a.b.c.d`,
IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`,
6to4 `2002::/16`, Teredo) is judged by that IPv4 address too. A host that is
all digits, dots and hex but not a plain dotted quad (`0177.0.0.1`,
`0x7f.1`, `2130706433`) is refused: resolvers read those as addresses,
differently from one another.

Time of check vs. time of use: the call is pinned to the address that was
checked. The request goes to `https://<checked ip>/path` with the original
`Host` header and the TLS server name (SNI, and certificate verification)
set to the original name, so a DNS answer that changes between the check and
the connect (DNS rebinding) cannot move the call elsewhere. Redirects are
never followed (a 3xx is a failure naming where it pointed).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import httpx

from opsloop.errors import DomainError
from opsloop.remediation.config import Actions

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# the cloud metadata services, by address and by name (refused even when allow-listed)
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "instance-data",
                            "instance-data.ec2.internal"})


NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)
_DOTTED_QUAD = re.compile(r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}")


class Refused(DomainError):
    """A call that must not leave: off the allow-list, or to an address no runbook may reach."""


def parse_url(text: str) -> httpx.URL:
    """`text` as a URL, or Refused saying why it cannot be one."""
    try:
        url = httpx.URL(text)
        port = url.port
    except (httpx.InvalidURL, ValueError, TypeError) as error:
        raise Refused(f"the URL cannot be read: {error}") from None
    if port is not None and not 0 < port < 65536:
        raise Refused(f"the URL's port {port} is out of range")
    return url


class Resolver(Protocol):
    """Every address a host name resolves to (an IP literal resolves to itself)."""

    def resolve(self, host: str, port: int) -> list[str]: ...


class SystemResolver:
    def resolve(self, host: str, port: int) -> list[str]:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise Refused(f"cannot resolve {host}: {error.strerror or error}") from None
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    """A checked destination: the name as written, and the address the call is pinned to."""

    host: str
    port: int
    address: str
    addresses: tuple[str, ...]

    def pinned(self, url: httpx.URL) -> httpx.URL:
        return url.copy_with(host=self.address)


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, NAT64, 6to4, Teredo), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in NAT64) or (int(address) >> 32 == 0 and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)  # NAT64 or IPv4-compatible (::a.b.c.d)
    return None


def address_problem(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why an address may not be called, or None."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = embedded_ipv4(address)
        if carried is not None:
            problem = address_problem(carried, allow_loopback=allow_loopback)
            if problem is not None:
                return f"carries the IPv4 address {carried}, which {problem}"
    if address in METADATA_ADDRESSES:
        return "is a cloud metadata address"
    if address.is_link_local:
        return "is link-local"
    if address.is_loopback and not allow_loopback:
        return "is a loopback address (set actions.allow_loopback to call one)"
    if address.is_unspecified or address.is_multicast:
        return "is not a unicast address"
    return None


def host_allowed(host: str, allow_hosts: Iterable[str]) -> bool:
    """Exact names (case-insensitive), or `*.example.com` for names under example.com. An IP address
    matches the same address however either is written (`[FD00::1]` and `fd00:0::1` are one)."""
    host = host.lower().rstrip(".")
    literal = _address(host)
    for allowed in allow_hosts:
        allowed = allowed.lower().rstrip(".")
        if host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:])):
            return True
        if literal is not None and literal == _address(allowed.removeprefix("[").removesuffix("]")):
            return True
    return False


def check_url(url: httpx.URL, actions: Actions, resolver: Resolver) -> Target:
    """The checked target of `url`, or Refused saying why (nothing has been sent)."""
    if url.scheme not in ("https", "http"):
        raise Refused(f"only https and http URLs can be called, not {url.scheme or 'none'}")
    host = url.host.lower().rstrip(".")
    if not host:
        raise Refused("the URL names no host")
    if "⟦secret:" in host or "⟦secret:" in url.path or "⟦secret:" in str(url.query):
        raise Refused("secrets cannot be part of the URL (it ends up in access logs); "
                      "send them in a header or the body")
    if _NUMERIC_HOST.fullmatch(host) and not _DOTTED_QUAD.fullmatch(host) and any(c.isdigit() for c in host):
        raise Refused(f"{host} is a numeric host that is not a plain IPv4 address (a.b.c.d); refused")
    if host in METADATA_NAMES:
        raise Refused(f"{host} is a cloud metadata service and can never be called")
    literal = _address(host)
    if literal is not None:  # an address written in the URL (`[fd00:ec2::254]`): what it is, first
        problem = address_problem(literal, allow_loopback=actions.allow_loopback)
        if problem:
            raise Refused(f"{host} {problem}; refused")
    if not host_allowed(host, actions.allow_hosts):
        allowed = ", ".join(actions.allow_hosts) or "none"
        raise Refused(f"{host} is not in actions.allow_hosts (allowed: {allowed})")
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = [host] if literal is not None else resolver.resolve(host, port)
    if not addresses:
        raise Refused(f"{host} resolves to no address")
    for text in addresses:
        address = _address(text)
        if address is None:
            raise Refused(f"{host} resolved to something that is not an address")
        problem = address_problem(address, allow_loopback=actions.allow_loopback)
        if problem:
            shown = host if literal is not None else f"{host} resolves to {text}, which"
            raise Refused(f"{shown} {problem}; refused" if literal is None else f"{host} {problem}; refused")
    return Target(host=host, port=port, address=str(_address(addresses[0])), addresses=tuple(addresses))
