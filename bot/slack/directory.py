"""Slack user groups as the `Directory` of `opsloop.authz`: `roles` may list S... ids.

Members are read with `usergroups.users.list` and kept for a short while, so
a burst of button presses costs one call, and a change of membership counts
within a minute. If Slack cannot be asked, the last known members are used;
if there are none, the group has no members (a refusal, never a grant).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import WebClient

log = logging.getLogger(__name__)


class SlackDirectory:
    def __init__(
        self,
        client: WebClient,
        *,
        ttl: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.monotonic = monotonic
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def members(self, group_id: str) -> frozenset[str]:
        now = self.monotonic()
        with self._lock:
            cached = self._cache.get(group_id)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            answer = self.client.api_call("usergroups.users.list", params={"usergroup": group_id})
            users = frozenset(str(u) for u in answer.get("users") or [])
        except (SlackApiError, SlackClientError, OSError) as error:
            log.warning("cannot read the members of user group %s: %s", group_id, error)
            return cached[1] if cached is not None else frozenset()
        with self._lock:
            self._cache[group_id] = (now, users)
        return users

    def user_by_email(self, email: str) -> str | None:
        """The Slack user id of `email` (`users.lookupByEmail`), or None when Slack knows nobody by it
        or cannot be asked (then the person stays unmapped: never a guess)."""
        try:
            answer = self.client.api_call("users.lookupByEmail", http_verb="GET", params={"email": email})
        except SlackApiError as error:
            if error.response.get("error") != "users_not_found":
                log.warning("cannot look up %s in Slack: %s", email, error)
            return None
        except (SlackClientError, OSError) as error:
            log.warning("cannot look up %s in Slack: %s", email, error)
            return None
        found = (answer.get("user") or {}).get("id")
        return str(found) if found else None
