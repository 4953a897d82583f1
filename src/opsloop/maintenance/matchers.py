"""Alertmanager's matcher syntax: `name=value`, `name!=value`, `name=~regex`, `name!~regex`.

As in Alertmanager, a regular expression is anchored at both ends, a label an
alert does not carry reads as the empty string, and a set of matchers in which
every one matches the empty string is refused: it would match every alert.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from opsloop.errors import InvalidInput

OPERATORS = ("=~", "!~", "!=", "=")  # longest first: `a=~b` is a regex, not `a` = `~b`
_MATCHER = re.compile(r"^([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)(.*)$", re.DOTALL)
MAX_VALUE = 1000
MAX_MATCHERS = 20


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    @cached_property
    def _regex(self) -> re.Pattern[str] | None:
        return re.compile(self.value) if self.op in ("=~", "!~") else None

    def matches(self, labels: Mapping[str, str]) -> bool:
        seen = labels.get(self.name, "")
        if self.op == "=":
            return seen == self.value
        if self.op == "!=":
            return seen != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(seen) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'

    def to_json(self) -> list[str]:
        return [self.name, self.op, self.value]

    def to_silence(self) -> dict[str, Any]:
        """As Alertmanager's API v2 takes it (`POST /api/v2/silences`)."""
        return {"name": self.name, "value": self.value, "isRegex": self.op in ("=~", "!~"),
                "isEqual": self.op in ("=", "=~")}


def parse_matcher(text: str) -> Matcher:
    """`service=checkout`, `env=~"prod|staging"` (the quotes already read), ... or InvalidInput."""
    found = _MATCHER.match(text.strip())
    if found is None:
        raise InvalidInput(f"'{text}' is not a matcher: write label=value, label!=value, label=~regex "
                           "or label!~regex (e.g. service=checkout)")
    name, op, value = found.groups()
    if len(value) > MAX_VALUE:
        raise InvalidInput(f"{name}: the value is {len(value)} characters; at most {MAX_VALUE}")
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as error:
            raise InvalidInput(f"{name}{op}: invalid regular expression: {error}") from None
    return Matcher(name, op, value)


def check_set(matchers: Iterable[Matcher]) -> list[Matcher]:
    """A window's matchers: at least one, at most MAX_MATCHERS, and not all matching everything."""
    found = list(dict.fromkeys(matchers))
    if not found:
        raise InvalidInput("name the alerts the window covers with at least one matcher, "
                           "e.g. service=checkout")
    if len(found) > MAX_MATCHERS:
        raise InvalidInput(f"{len(found)} matchers; at most {MAX_MATCHERS}")
    if all(m.matches({}) for m in found):
        raise InvalidInput("these matchers match every alert (each matches an empty label): "
                           "at least one must name something, e.g. service=checkout")
    return found


def from_json(rows: Iterable[list[str]]) -> list[Matcher]:
    return [Matcher(name, op, value) for name, op, value in rows]


def match_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
