"""Secrets of http steps: markers until the moment of the call, then never again.

A rendered request carries `⟦secret:NAME⟧` markers (opsloop.runbooks.render).
`Vault.reveal` swaps them for the environment's values only for the outgoing
request; `Vault.scrub` turns any value back into its marker, and is applied
to everything that leaves the executor (errors, response excerpts, outputs),
so a secret an API echoes back is not stored or shown either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opsloop.errors import DomainError

MARKER = re.compile(r"⟦secret:([A-Za-z_][A-Za-z0-9_]*)⟧")
MASK = "••••"


class MissingSecret(DomainError):
    """A secret a request uses is not declared or not set; nothing was sent."""


def names_in(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(MARKER.findall(value))
    if isinstance(value, Mapping):
        return {n for v in value.values() for n in names_in(v)} | {n for k in value for n in names_in(k)}
    if isinstance(value, list):
        return {n for v in value for n in names_in(v)}
    return set()


def mask(value: Any) -> Any:
    """For people: `Bearer {{ secrets.OPS_API_TOKEN }}` shows which secret, never its value."""
    if isinstance(value, str):
        return MARKER.sub(lambda m: f"{{{{ secrets.{m.group(1)} }}}}", value)
    if isinstance(value, Mapping):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


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
        if isinstance(value, str):
            return MARKER.sub(lambda m: values[m.group(1)], value)
        if isinstance(value, Mapping):
            return {k: self.reveal(v, values) for k, v in value.items()}
        if isinstance(value, list):
            return [self.reveal(v, values) for v in value]
        return value

    def scrub(self, value: Any, values: Mapping[str, str] | None = None) -> Any:
        """Replace every known secret value (all of them unless `values` says which) by its marker."""
        if values is None:
            values = {n: self.environ.get(v, "") for n, v in self.names.items()}
        if isinstance(value, str):
            # longest first, so a secret containing another is replaced whole
            for name, secret in sorted(values.items(), key=lambda kv: -len(kv[1])):
                if secret:
                    value = value.replace(secret, f"⟦secret:{name}⟧")
            return value
        if isinstance(value, Mapping):
            return {k: self.scrub(v, values) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub(v, values) for v in value]
        return value
