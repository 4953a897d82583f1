"""What people type for a person (`<@U123>`, `U123`, `@ann`) -> a user id that the directory knows.

An unknown person is refused, never assigned or paged: a typo must not make a
stranger an incident's owner. A name that fits several people is refused with
their mentions, so the typist can pick one.
"""

from __future__ import annotations

import re

from opsloop.authz import Authorizer
from opsloop.errors import NotFound
from opsloop.messages import user

_ID = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$|^@?([UW][A-Z0-9]{2,})$")


class People:
    """The `Lookups` of the command grammar: people, through the authorizer's directory (which
    Slack mode replaces with Slack's)."""

    def __init__(self, authz: Authorizer) -> None:
        self.authz = authz

    def person(self, token: str) -> str:
        directory = self.authz.directory
        found_id = _ID.match(token)
        if found_id is not None:
            user_id = found_id.group(1) or found_id.group(2)
            if directory.person(user_id) is None:
                raise NotFound(f"unknown user {user_id}: nobody in {directory.where} has that id")
            return user_id
        name = token.removeprefix("@")
        matches = directory.find(name)
        if not matches:
            raise NotFound(f"unknown user @{name}: nobody in {directory.where} is called that "
                           "(mention them, or give their user id)")
        if len(matches) > 1:
            either = ", ".join(user(p.id) for p in matches[:5])
            raise NotFound(f"@{name} could be {either}: mention the one you mean")
        return matches[0].id
