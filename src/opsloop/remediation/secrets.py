"""Secrets of http steps: references until the moment of the call, then never again.

A rendered request is "request text": a secret the runbook's template names
(`{{ secrets.NAME }}`) is the reference `⟦secret:NAME⟧`, and every `⟦` that
came from anywhere else (inputs, the item's title and labels, tenants,
earlier steps' outputs, the template's own literal text) is doubled, `⟦⟦`.
So data can never spell a reference, whatever characters it holds: only
`opsloop.runbooks.render` writes one, and only where the template names it.

`Vault.reveal` turns request text into what is sent (references become the
environment's values, `⟦⟦` becomes `⟦`) only for the outgoing request;
`Vault.scrub` replaces every secret value in what comes back (errors, answer
excerpts, outputs) with `[secret NAME]`, before anything is cut, and
`Vault.scrub_cut` also removes a secret's first characters left at the end of
a cut text (8 or more).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opsloop.errors import DomainError

OPEN, CLOSE = "⟦", "⟧"
_REFERENCE = re.compile(r"⟦secret:([A-Za-z_][A-Za-z0-9_]*)⟧")
MIN_PREFIX = 8  # this many leading characters of a secret, left by a cut, are scrubbed too
ELLIPSIS = "…"


class MissingSecret(DomainError):
    """A secret a request uses is not declared or not set; nothing was sent."""


@dataclass(frozen=True)
class Reference:
    name: str


def reference(name: str) -> str:
    return f"{OPEN}secret:{name}{CLOSE}"


def escape(text: str) -> str:
    """Plain text as request text: it can never read as a reference."""
    return text.replace(OPEN, OPEN + OPEN)


def parts(text: str) -> Iterator[str | Reference]:
    """Request text as plain strings and references."""
    plain: list[str] = []
    position = 0
    while True:
        found = text.find(OPEN, position)
        if found < 0:
            plain.append(text[position:])
            break
        plain.append(text[position:found])
        if text.startswith(OPEN + OPEN, found):
            plain.append(OPEN)
            position = found + 2
            continue
        match = _REFERENCE.match(text, found)
        if match is None:  # not written by the renderer; kept as the text it is
            plain.append(OPEN)
            position = found + 1
            continue
        yield "".join(plain)
        plain = []
        yield Reference(match.group(1))
        position = match.end()
    yield "".join(plain)


def plain(text: str) -> str | None:
    """Request text without references as the text it stands for; None if it holds a reference."""
    found: list[str] = []
    for part in parts(text):
        if isinstance(part, Reference):
            return None
        found.append(part)
    return "".join(found)


def names_in(value: Any) -> set[str]:
    """The secrets a request's values refer to (keys are the runbook's literal text, never references)."""
    if isinstance(value, str):
        return {part.name for part in parts(value) if isinstance(part, Reference)}
    if isinstance(value, Mapping):
        return {n for v in value.values() for n in names_in(v)}
    if isinstance(value, list):
        return {n for v in value for n in names_in(v)}
    return set()


def _each_string(value: Any, change: Any) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, Mapping):
        return {k: _each_string(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_each_string(v, change) for v in value]
    return value


def mask(value: Any) -> Any:
    """For people: `Bearer {{ secrets.OPS_API_TOKEN }}` shows which secret, never its value."""
    return _each_string(value, lambda text: "".join(
        f"{{{{ secrets.{p.name} }}}}" if isinstance(p, Reference) else p for p in parts(text)))


class Vault:
    """Secret values read from the environment (policy `actions.secrets`: name -> variable)."""

    def __init__(self, names: Mapping[str, str], environ: Mapping[str, str]) -> None:
        self.names = dict(names)
        self.environ = environ

    def values_for(self, used: set[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for name in sorted(used):
            variable = self.names.get(name)
            if variable is None:
                raise MissingSecret(f"secrets.{name} is not declared under actions.secrets")
            value = self.environ.get(variable, "")
            if not value:
                raise MissingSecret(f"secrets.{name}: the environment variable {variable} is not set")
            values[name] = value
        return values

    def reveal(self, value: Any, values: Mapping[str, str]) -> Any:
        """Request text as it is sent: references become their values, `⟦⟦` becomes `⟦`."""
        return _each_string(value, lambda text: "".join(
            values[p.name] if isinstance(p, Reference) else p for p in parts(text)))

    def _known(self, values: Mapping[str, str] | None) -> list[tuple[str, str]]:
        if values is None:
            values = {n: self.environ.get(v, "") for n, v in self.names.items()}
        # longest first, so a secret containing another is replaced whole
        return sorted(((n, s) for n, s in values.items() if s), key=lambda kv: -len(kv[1]))

    def scrub(self, value: Any, values: Mapping[str, str] | None = None) -> Any:
        """Replace every known secret value (all of them unless `values` says which) by its name."""
        known = self._known(values)

        def clean(text: str) -> str:
            for name, secret in known:
                text = text.replace(secret, f"[secret {name}]")
            return text

        return _each_string(value, clean)

    def scrub_cut(self, text: str, limit: int, values: Mapping[str, str] | None = None) -> str:
        """`text` scrubbed, then cut to `limit` characters (with an ellipsis), and scrubbed again
        at the cut: a secret's first characters left at the end are removed too."""
        known = self._known(values)
        text = self.scrub(text, values)
        if len(text) <= limit:
            return text
        text = text[:limit]
        for name, secret in known:
            for length in range(len(secret) - 1, MIN_PREFIX - 1, -1):
                if text.endswith(secret[:length]):
                    text = text[:-length] + f"[secret {name}]"
                    break
        return text + ELLIPSIS
