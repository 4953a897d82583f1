"""Mirroring a maintenance window as an Alertmanager silence (`integrations[].silence_url`).

Optional and after the fact: opsloop holds matching alerts itself, so a
silence only spares Alertmanager's other receivers. Each call is bounded by a
total deadline (`maintenance.silence_timeout`), never follows a redirect and
reads at most 64 KiB of answer; a failure is reported and audited, never
retried behind anyone's back, and never undoes the window. A silence carries
the window's own end, so it lapses by itself; a window ended early expires it
(`DELETE /api/v2/silence/ID`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from opsloop.deadline import deadline
from opsloop.maintenance.matchers import Matcher
from opsloop.policy import Policy

MAX_ANSWER = 64 * 1024
_ID_CHARS = frozenset("0123456789abcdefABCDEF-")


@dataclass
class Mirrored:
    silences: dict[str, str] = field(default_factory=dict)  # integration -> silence id
    problems: list[str] = field(default_factory=list)  # "prometheus: HTTP 500 ..."


class Silences:
    def __init__(self, policy: Policy, client: httpx.Client) -> None:
        self.apis = {i.name: i.silence_url.rstrip("/") for i in policy.integrations if i.silence_url}
        self.timeout = policy.maintenance.silence_timeout.total_seconds()
        self.client = client

    def create(self, *, ref: str, what: str, matchers: list[Matcher], starts: datetime, ends: datetime,
               by: str) -> Mirrored:
        """A silence for the window in every Alertmanager that has a `silence_url`."""
        out = Mirrored()
        body = {"matchers": [m.to_silence() for m in matchers],
                "startsAt": _iso(starts), "endsAt": _iso(ends), "createdBy": f"opsloop ({by})",
                "comment": f"{ref}: {what}"[:1000]}
        for name, api in self.apis.items():
            try:
                status, answer = self._call("POST", f"{api}/api/v2/silences", body)
                found = answer.get("silenceID") if isinstance(answer, dict) else None
                if status != 200 or not isinstance(found, str) or not _is_id(found):
                    raise ValueError(f"HTTP {status}, no silence id in the answer")
                out.silences[name] = found
            except (httpx.HTTPError, ValueError) as error:
                out.problems.append(f"{name}: {_reason(error)}")
        return out

    def expire(self, silences: dict[str, Any]) -> list[str]:
        """Expire the window's silences now; the problems, one per Alertmanager that failed."""
        problems = []
        for name, silence in silences.items():
            api = self.apis.get(name)
            if api is None or not isinstance(silence, str) or not _is_id(silence):
                continue
            try:
                status, _ = self._call("DELETE", f"{api}/api/v2/silence/{silence}", None)
                if status not in (200, 404):  # 404: gone already (it lapsed, or someone expired it)
                    raise ValueError(f"HTTP {status}")
            except (httpx.HTTPError, ValueError) as error:
                problems.append(f"{name}: {_reason(error)}")
        return problems

    def _call(self, method: str, url: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        with deadline(self.timeout), self.client.stream(
                method, url, json=body, follow_redirects=False, timeout=self.timeout) as response:
            data = b""
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_ANSWER:
                    raise ValueError(f"the answer is larger than {MAX_ANSWER} bytes")
        try:
            return response.status_code, json.loads(data) if data else None
        except ValueError:
            return response.status_code, None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _is_id(text: str) -> bool:
    return 0 < len(text) <= 64 and set(text) <= _ID_CHARS


def _reason(error: Exception) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "no answer in time"
    if isinstance(error, httpx.HTTPError):
        return f"unreachable ({type(error).__name__})"
    return str(error)
