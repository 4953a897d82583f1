"""A total deadline for outbound HTTP calls, body included.

httpx's timeouts bound each network operation, not the call: a server that
sends one byte a second never trips a 10 s read timeout and can hold a call
(and the worker making it) for as long as it likes. Under `deadline(seconds)`
every read, write, connect and TLS handshake of a client made by
`deadline_client` gets at most the time left, and fails with httpx's timeout
error once none is left; so the whole exchange, headers and body, ends by the
deadline. The deadline is per thread (a context variable), so workers calling
concurrently through one client each keep their own.
"""

from __future__ import annotations

import contextvars
import ssl
import time
import typing
from collections.abc import Iterator
from contextlib import contextmanager

import httpcore
import httpx

LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("opsloop_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Calls made inside end within `seconds` from now (an inner deadline may only be sooner)."""
    outer = _DEADLINE.get()
    ends = time.monotonic() + seconds
    token = _DEADLINE.set(ends if outer is None else min(outer, ends))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _left(timeout: float | None, expired: type[Exception]) -> float | None:
    ends = _DEADLINE.get()
    if ends is None:
        return timeout
    left = ends - time.monotonic()
    if left <= 0:
        raise expired("the call's deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(self._stream.start_tls(ssl_context, server_hostname,
                                              _left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        return _Stream(self._backend.connect_tcp(host, port, _left(timeout, httpcore.ConnectTimeout),
                                                 local_address, socket_options))

    def connect_unix_socket(
            self, path: str, timeout: float | None = None,
            socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        return _Stream(self._backend.connect_unix_socket(path, _left(timeout, httpcore.ConnectTimeout),
                                                         socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's own transport, its connections made through the deadline-keeping backend."""

    def __init__(self, *, verify: ssl.SSLContext | bool = True, limits: httpx.Limits = LIMITS) -> None:
        super().__init__(verify=verify, limits=limits, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, network_backend=_Backend())


def deadline_client(*, timeout: float = 10.0, verify: ssl.SSLContext | bool = True) -> httpx.Client:
    """A client whose calls keep `deadline`s; it never follows redirects or reads proxy settings."""
    return httpx.Client(transport=DeadlineTransport(verify=verify), timeout=timeout, follow_redirects=False,
                        trust_env=False)
