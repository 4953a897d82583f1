"""The `http` executor: one step run's call, with retries, a timeout and one Idempotency-Key.

httpx sends, tenacity retries: on transport errors and timeouts, and on the
step's `retry.on_status`, waiting what a `Retry-After` asks (capped at
MAX_RETRY_AFTER) or else a short exponential backoff. Every attempt of one
step run carries the same `Idempotency-Key`, so an API that saw an earlier
attempt can recognise the repeat. Redirects are never followed.

An attempt has `timeout` of wall-clock time, connecting, sending and the whole
answer included (`opsloop.deadline`; each retry gets its own), and reads at
most `actions.max_response` bytes of the answer: a larger one fails the step
saying so. Secrets are scrubbed from whatever comes back before it is cut.

Outcomes: `succeeded` (an expected status), `failed` (the API said no, or
nothing could reach it, or the request could not be made: a URL that cannot
be read, a header that is not text), or `unknown` when the request may have
reached the API but no answer came back (a read timeout, a dropped
connection) — a person decides then; the executor never guesses.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from opsloop.deadline import deadline
from opsloop.outbox import retry_after
from opsloop.remediation.config import Actions
from opsloop.remediation.safety import Refused, Resolver, Target, check_url, parse_url
from opsloop.remediation.secrets import MissingSecret, Vault, names_in, plain

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


@dataclass(frozen=True)
class Answer:
    """What came back: the status, the headers and at most `actions.max_response` bytes of body."""

    status: int
    headers: httpx.Headers
    body: bytes
    complete: bool  # False: the body was larger than the cap and was cut there

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _Retryable(Exception):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer


def request_url(call: Call) -> httpx.URL:
    """The call's URL, or Refused: it may hold no secret (URLs end up in access logs) and must parse."""
    text = plain(call.url)
    if text is None:
        raise Refused("secrets cannot be part of the URL (it ends up in access logs); "
                      "send them in a header or the body")
    return parse_url(text)


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
        target = check_url(request_url(call), self.actions, self.resolver)
        self.vault.values_for(names_in(call.headers) | names_in(call.json_body))
        return target.address

    def _request(self, call: Call, idempotency_key: str, url: httpx.URL, target: Target,
                 values: dict[str, str]) -> httpx.Request:
        headers = {k: str(v) for k, v in self.vault.reveal(dict(call.headers), values).items()}
        headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "idempotency-key")}
        headers["Host"] = url.netloc.decode("ascii")
        headers["Idempotency-Key"] = idempotency_key
        body = self.vault.reveal(call.json_body, values)
        try:
            request = self.client.build_request(
                call.method, target.pinned(url), headers=headers,
                content=None if body is None else json.dumps(body).encode(),
                timeout=httpx.Timeout(call.timeout),
                # TLS checks the certificate against the name, not the pinned address
                extensions={"sni_hostname": target.host} if url.scheme == "https" else {},
            )
        except (UnicodeEncodeError, ValueError, TypeError) as error:  # e.g. a header that is not ASCII
            raise Refused(f"the request cannot be made: {type(error).__name__}: {error}") from None
        if body is not None:
            request.headers["Content-Type"] = "application/json"
        return request

    def execute(self, call: Call, idempotency_key: str) -> Outcome:
        try:
            url = request_url(call)
            target = check_url(url, self.actions, self.resolver)
            values = self.vault.values_for(names_in(call.headers) | names_in(call.json_body))
            request = self._request(call, idempotency_key, url, target, values)
        except (Refused, MissingSecret) as error:
            return Outcome(FAILED, error=self.vault.scrub(f"refused before sending: {error}"))
        state = {"attempts": 0, "ambiguous": False}

        def attempt() -> Answer:
            state["attempts"] += 1
            try:
                with deadline(call.timeout):  # the whole attempt, connecting to the last byte
                    answer = self._send(request)
            except httpx.TransportError as error:
                if not isinstance(error, _SURE_NOT_SENT):
                    state["ambiguous"] = True
                raise
            if answer.status in call.on_status:
                raise _Retryable(answer)
            return answer

        retrying = Retrying(
            stop=stop_after_attempt(call.attempts),
            retry=retry_if_exception_type((httpx.TransportError, _Retryable)),
            wait=self._wait, sleep=self.sleep, reraise=True,
        )
        answer: Answer | None = None
        error_text: str | None = None
        try:
            answer = retrying(attempt)
        except _Retryable as last:
            answer = last.answer
        except httpx.TimeoutException as error:
            error_text = f"timed out after {call.timeout:g}s ({type(error).__name__})"
        except httpx.TransportError as error:
            error_text = f"{type(error).__name__}: {error}"
        attempts = state["attempts"]
        outcome = self._judge(call, answer, error_text, bool(state["ambiguous"]), attempts, values)
        outcome.address = target.address
        outcome.error = self.vault.scrub(outcome.error, values) if outcome.error else None
        log.info("http step call %s %s%s -> %s (%s attempt(s))", call.method, target.host,
                 url.path, outcome.status or outcome.state, attempts)
        return outcome

    def _send(self, request: httpx.Request) -> Answer:
        """One exchange, reading at most `actions.max_response` bytes of the answer."""
        cap = self.actions.max_response
        response = self.client.send(request, follow_redirects=False, stream=True)
        try:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > cap:
                    return Answer(response.status_code, response.headers, bytes(body[:cap]), complete=False)
            return Answer(response.status_code, response.headers, bytes(body), complete=True)
        finally:
            response.close()

    def _judge(self, call: Call, answer: Answer | None, error: str | None, ambiguous: bool,
               attempts: int, values: dict[str, str]) -> Outcome:
        tries = f" after {attempts} attempt(s)"
        if answer is None:
            if ambiguous:
                return Outcome(UNKNOWN, attempts, error=f"{error}{tries}; the API may have acted on it: "
                               "check, then mark it succeeded or failed, or retry")
            return Outcome(FAILED, attempts, error=f"could not reach the API: {error}{tries}")
        status = answer.status
        if 300 <= status < 400:
            where = _host_of(answer.headers.get("location", ""))
            return Outcome(FAILED, attempts, status,
                           error=f"the API answered {status}, a redirect to {where}; "
                                 "redirects are never followed")
        if not answer.complete:
            return Outcome(FAILED, attempts, status,
                           error=f"the answer is larger than {self.actions.max_response} bytes "
                                 "(actions.max_response); it was not read on")
        if status not in call.expect:
            expected = "/".join(str(s) for s in call.expect)
            excerpt = self.vault.scrub_cut(" ".join(answer.text.split()), MAX_EXCERPT, values)
            said = f": {excerpt}" if excerpt else ""
            failed = Outcome(FAILED, attempts, status,
                             error=f"expected {expected}, got {status}{tries}{said}")
            if ambiguous:  # an earlier attempt may have got through
                failed.state = UNKNOWN
            return failed
        outputs, missing = self._outputs(answer, call.outputs, values)
        note = f"outputs not in the answer: {', '.join(missing)}" if missing else None
        return Outcome(SUCCEEDED, attempts, status, outputs, error=note)

    def _outputs(self, answer: Answer, paths: Mapping[str, str],
                 values: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
        """The outputs the step names, each scrubbed of secrets and then cut to MAX_OUTPUT."""
        if not paths:
            return {}, []
        try:
            document = json.loads(answer.body)
        except (ValueError, RecursionError):
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
            if isinstance(value, str):
                value = self.vault.scrub_cut(value, MAX_OUTPUT, values)
            found[name] = value
        return found, missing

    def _wait(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, _Retryable):
            asked = retry_after(error.answer.headers.get("retry-after"), self.now())
            if asked is not None:
                return min(asked, MAX_RETRY_AFTER)
        return float(min(BACKOFF_FIRST * 2 ** (retry_state.attempt_number - 1), BACKOFF_MAX))


def _host_of(location: str) -> str:
    try:
        return httpx.URL(location).host or "an unnamed place"
    except (httpx.InvalidURL, ValueError):
        return "a place that is not a valid URL"


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
