"""Where an `http` step may go: allow-listed hosts, never link-local, loopback or metadata addresses.

The host of a rendered request must be in `actions.allow_hosts`. Its name is
then resolved (through an injectable `Resolver`, `socket.getaddrinfo` in
production) and EVERY address it resolves to is checked; one bad address
refuses the call, so a name that also points at 169.254.169.254 cannot slip
through round-robin.

Time of check vs. time of use: the call is pinned to the address that was
checked. The request goes to `https://<checked ip>/path` with the original
`Host` header and the TLS server name (SNI, and certificate verification)
set to the original name, so a DNS answer that changes between the check and
the connect (DNS rebinding) cannot move the call elsewhere. Redirects are
never followed (a 3xx is a failure naming where it pointed).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import httpx

from opsloop.errors import DomainError
from opsloop.policy import Actions

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# the cloud metadata services, by address and by name (refused even when allow-listed)
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "instance-data",
                            "instance-data.ec2.internal"})


class Refused(DomainError):
    """A call that must not leave: off the allow-list, or to an address no runbook may reach."""


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


def address_problem(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why an address may not be called, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
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
    """Exact names (case-insensitive), or `*.example.com` for names under example.com."""
    host = host.lower().rstrip(".")
    for allowed in allow_hosts:
        allowed = allowed.lower().rstrip(".")
        if host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:])):
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
    if host in METADATA_NAMES:
        raise Refused(f"{host} is a cloud metadata service and can never be called")
    if not host_allowed(host, actions.allow_hosts):
        allowed = ", ".join(actions.allow_hosts) or "none"
        raise Refused(f"{host} is not in actions.allow_hosts (allowed: {allowed})")
    port = url.port or (443 if url.scheme == "https" else 80)
    literal = _address(host)
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
