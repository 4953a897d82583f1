"""The `http` executor: one step run's call, with retries, a timeout and one Idempotency-Key.

httpx sends, tenacity retries: on transport errors and timeouts, and on the
step's `retry.on_status`, waiting what a `Retry-After` asks (capped at
MAX_RETRY_AFTER) or else a short exponential backoff. Every attempt of one
step run carries the same `Idempotency-Key`, so an API that saw an earlier
attempt can recognise the repeat. Redirects are never followed.

Outcomes: `succeeded` (an expected status), `failed` (the API said no, or
nothing could reach it), or `unknown` when the request may have reached the
API but no answer came back (a read timeout, a dropped connection) — a
person decides then; the executor never guesses.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from opsloop.policy import Actions
from opsloop.remediation.safety import Refused, Resolver, check_url
from opsloop.remediation.secrets import MissingSecret, Vault, names_in

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 30.0  # seconds: a longer wait ends the call instead (the lease must cover it)
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 8.0
MAX_EXCERPT = 300
MAX_OUTPUT = 1000
SUCCEEDED, FAILED, UNKNOWN = "succeeded", "failed", "unknown"
# errors after which the request may have been received: the outcome is unknown, not failed
_SURE_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass(frozen=True)
class Call:
    """A rendered request (secrets as markers) and how to treat its answers."""

    method: str
    url: str
    headers: Mapping[str, str]
    json_body: Any
    expect: tuple[int, ...]
    timeout: float
    attempts: int
    on_status: tuple[int, ...]
    outputs: Mapping[str, str] = field(default_factory=dict)  # name -> $.json.path

    def budget(self) -> float:
        """The longest the call can take: the executor's lease on the step run covers this."""
        return self.attempts * self.timeout + (self.attempts - 1) * MAX_RETRY_AFTER


@dataclass
class Outcome:
    state: str
    attempts: int = 0
    status: int | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    address: str | None = None


class _Retryable(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response


class HttpExecutor:
    def __init__(self, client: httpx.Client, actions: Actions, resolver: Resolver,
                 environ: Mapping[str, str], *, sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.client = client
        self.actions = actions
        self.resolver = resolver
        self.vault = Vault(actions.secrets, environ)
        self.sleep = sleep
        self.now = now

    def check(self, call: Call) -> str:
        """Refused unless the call may go; returns the address it would be pinned to."""
        target = check_url(httpx.URL(call.url), self.actions, self.resolver)
        self.vault.values_for(names_in(call.headers) | names_in(call.json_body))
        return target.address

    def execute(self, call: Call, idempotency_key: str) -> Outcome:
        try:
            url = httpx.URL(call.url)
            target = check_url(url, self.actions, self.resolver)
            values = self.vault.values_for(names_in(call.headers) | names_in(call.json_body))
        except (Refused, MissingSecret) as error:
            return Outcome(FAILED, error=f"refused before sending: {error}")
        headers = {k: str(v) for k, v in self.vault.reveal(dict(call.headers), values).items()}
        headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "idempotency-key")}
        headers["Host"] = url.netloc.decode("ascii")
        headers["Idempotency-Key"] = idempotency_key
        body = self.vault.reveal(call.json_body, values)
        request = self.client.build_request(
            call.method, target.pinned(url), headers=headers,
            content=None if body is None else json.dumps(body).encode(),
            timeout=httpx.Timeout(call.timeout),
            # TLS checks the certificate against the name, not the pinned address
            extensions={"sni_hostname": target.host} if url.scheme == "https" else {},
        )
        if body is not None:
            request.headers["Content-Type"] = "application/json"
        state = {"attempts": 0, "ambiguous": False}

        def attempt() -> httpx.Response:
            state["attempts"] += 1
            try:
                response = self.client.send(request, follow_redirects=False)
            except httpx.TransportError as error:
                if not isinstance(error, _SURE_NOT_SENT):
                    state["ambiguous"] = True
                raise
            response.read()
            if response.status_code in call.on_status:
                raise _Retryable(response)
            return response

        retrying = Retrying(
            stop=stop_after_attempt(call.attempts),
            retry=retry_if_exception_type((httpx.TransportError, _Retryable)),
            wait=self._wait, sleep=self.sleep, reraise=True,
        )
        response: httpx.Response | None = None
        error_text: str | None = None
        try:
            response = retrying(attempt)
        except _Retryable as last:
            response = last.response
        except httpx.TimeoutException as error:
            error_text = f"timed out after {call.timeout:g}s ({type(error).__name__})"
        except httpx.TransportError as error:
            error_text = f"{type(error).__name__}: {error}"
        attempts = state["attempts"]
        outcome = self._judge(call, response, error_text, bool(state["ambiguous"]), attempts)
        outcome.address = target.address
        outcome.error = self.vault.scrub(outcome.error, values) if outcome.error else None
        outcome.outputs = self.vault.scrub(outcome.outputs, values)
        log.info("http step call %s %s%s -> %s (%s attempt(s))", call.method, target.host,
                 url.path, outcome.status or outcome.state, attempts)
        return outcome

    def _judge(self, call: Call, response: httpx.Response | None, error: str | None, ambiguous: bool,
               attempts: int) -> Outcome:
        tries = f" after {attempts} attempt(s)"
        if response is None:
            if ambiguous:
                return Outcome(UNKNOWN, attempts, error=f"{error}{tries}; the API may have acted on it: "
                               "check, then mark it succeeded or failed, or retry")
            return Outcome(FAILED, attempts, error=f"could not reach the API: {error}{tries}")
        status = response.status_code
        if 300 <= status < 400:
            where = httpx.URL(response.headers.get("location", "")).host or "an unnamed place"
            return Outcome(FAILED, attempts, status,
                           error=f"the API answered {status}, a redirect to {where}; "
                                 "redirects are never followed")
        if status not in call.expect:
            expected = "/".join(str(s) for s in call.expect)
            excerpt = _excerpt(response)
            said = f": {excerpt}" if excerpt else ""
            answer = Outcome(FAILED, attempts, status,
                             error=f"expected {expected}, got {status}{tries}{said}")
            if ambiguous:  # an earlier attempt may have got through
                answer.state = UNKNOWN
            return answer
        outputs, missing = _outputs(response, call.outputs)
        note = f"outputs not in the answer: {', '.join(missing)}" if missing else None
        return Outcome(SUCCEEDED, attempts, status, outputs, error=note)

    def _wait(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, _Retryable):
            asked = retry_after(error.response.headers.get("retry-after"), self.now())
            if asked is not None:
                return min(asked, MAX_RETRY_AFTER)
        return float(min(BACKOFF_FIRST * 2 ** (retry_state.attempt_number - 1), BACKOFF_MAX))


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a `Retry-After` header asks for (a number or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _excerpt(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return text[:MAX_EXCERPT] + ("…" if len(text) > MAX_EXCERPT else "")


def _outputs(response: httpx.Response, paths: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    if not paths:
        return {}, []
    try:
        document = response.json()
    except ValueError:
        return {}, list(paths)
    found: dict[str, Any] = {}
    missing: list[str] = []
    for name, path in paths.items():
        ok, value = json_path(document, path)
        if not ok:
            missing.append(name)
            continue
        if not isinstance(value, str | int | float | bool) and value is not None:
            value = json.dumps(value, sort_keys=True)
        if isinstance(value, str) and len(value) > MAX_OUTPUT:
            value = value[:MAX_OUTPUT] + "…"
        found[name] = value
    return found, missing


def json_path(document: Any, path: str) -> tuple[bool, Any]:
    """`$.a.b[0]` (the subset the runbook schema accepts) into `document`; (found, value)."""
    rest = path[1:]
    value = document
    while rest:
        if rest.startswith("."):
            name = rest[1:].split(".", 1)[0].split("[", 1)[0]
            rest = rest[1 + len(name):]
            if not isinstance(value, dict) or name not in value:
                return False, None
            value = value[name]
        elif rest.startswith("["):
            index_text, _, rest = rest[1:].partition("]")
            index = int(index_text)
            if not isinstance(value, list) or index >= len(value):
                return False, None
            value = value[index]
        else:
            return False, None
    return True, value
