"""Slack as the `Directory` of `opsloop.authz`: user groups (`roles` may list S... ids) and people.

Members are read with `usergroups.users.list` and kept for a short while, so
a burst of button presses costs one call, and a change of membership counts
within a minute. If Slack cannot be asked, the last known members are used;
if there are none, the group has no members (a refusal, never a grant).

People are checked with `users.info` (by id) and `users.list` (by name, the
whole list read page by page within one total deadline and kept for a few
minutes). A deactivated account is nobody. When Slack cannot be asked and
nothing is known, the lookup is refused (`DirectoryUnavailable`): a person is
never assigned or paged on a guess.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import WebClient

from opsloop.authz import Person
from opsloop.errors import DirectoryUnavailable

log = logging.getLogger(__name__)

PEOPLE_TTL = 300.0  # seconds a person (or the list of everyone) is kept
LIST_DEADLINE = 10.0  # seconds for reading every page of users.list
MAX_PAGES = 100  # at 200 a page: workspaces up to 20,000 people


class SlackDirectory:
    where = "this Slack workspace"

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
        self._people: dict[str, tuple[float, Person | None]] = {}
        self._everyone: tuple[float, list[tuple[Person, frozenset[str]]]] | None = None
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

    # ------------------------------------------------------------------ people

    def person(self, user_id: str) -> Person | None:
        now = self.monotonic()
        with self._lock:
            cached = self._people.get(user_id)
        if cached is not None and now - cached[0] < PEOPLE_TTL:
            return cached[1]
        try:
            answer = self.client.api_call("users.info", http_verb="GET", params={"user": user_id})
            found = _person(answer.get("user") or {})
        except SlackApiError as error:
            if error.response.get("error") not in ("user_not_found", "user_not_visible"):
                return self._unavailable(cached, error)
            found = None
        except (SlackClientError, OSError) as error:
            return self._unavailable(cached, error)
        with self._lock:
            self._people[user_id] = (now, found)
        return found

    def find(self, name: str) -> list[Person]:
        wanted = name.lower()
        return [person for person, names in self._everyone_now() if wanted in names]

    def _everyone_now(self) -> list[tuple[Person, frozenset[str]]]:
        now = self.monotonic()
        with self._lock:
            cached = self._everyone
        if cached is not None and now - cached[0] < PEOPLE_TTL:
            return cached[1]
        people: list[tuple[Person, frozenset[str]]] = []
        cursor = ""
        try:
            for _ in range(MAX_PAGES):
                if self.monotonic() - now > LIST_DEADLINE:
                    raise DirectoryUnavailable(f"Slack's list of users took over {LIST_DEADLINE:g} s")
                params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
                answer = self.client.api_call("users.list", http_verb="GET", params=params)
                for member in answer.get("members") or []:
                    person = _person(member)
                    if person is not None:
                        people.append((person, _names(member)))
                cursor = str((answer.get("response_metadata") or {}).get("next_cursor") or "")
                if not cursor:
                    break
        except (SlackApiError, SlackClientError, OSError, DirectoryUnavailable) as error:
            if cached is not None:
                log.warning("cannot read Slack's users (%s); using the list of %.0f s ago", error,
                            now - cached[0])
                return cached[1]
            raise DirectoryUnavailable(f"cannot look people up in Slack right now ({error}); "
                                       "mention them instead, or try again") from None
        with self._lock:
            self._everyone = (now, people)
        return people

    def _unavailable(self, cached: tuple[float, Person | None] | None, error: Exception) -> Person | None:
        if cached is not None:  # known a while ago: better than refusing everyone while Slack is down
            return cached[1]
        log.warning("cannot check a user with Slack: %s", error)
        raise DirectoryUnavailable(f"cannot check that user with Slack right now ({error}); try again")


def _person(member: dict[str, Any]) -> Person | None:
    """A workspace member as a Person; a deactivated account is nobody."""
    if not member.get("id") or member.get("deleted"):
        return None
    profile = member.get("profile") or {}
    name = profile.get("display_name") or member.get("name") or profile.get("real_name") or member["id"]
    return Person(str(member["id"]), str(name))


def _names(member: dict[str, Any]) -> frozenset[str]:
    """What people may type after @ for this member: the handle, display name or real name (any case)."""
    profile = member.get("profile") or {}
    names = (member.get("name"), profile.get("display_name"), profile.get("real_name"),
             member.get("real_name"))
    return frozenset(str(n).lower() for n in names if n)
