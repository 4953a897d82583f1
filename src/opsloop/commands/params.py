"""The parts of a command's grammar: the types a value may have, and the kinds of parameter."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from opsloop.messages import Reply

# --------------------------------------------------------------------------- types


class Lookups(Protocol):
    """What types may consult while reading a value: people, through the directory port."""

    def person(self, token: str) -> str:
        """A mention, a user id or `@name` -> the user id; UsageError/DomainError for nobody."""
        ...


@dataclass(frozen=True)
class Context:
    command: str  # e.g. /incident
    actor: str
    channel: str | None
    lookups: Lookups


class ArgType(Protocol):
    """A kind of value: how it is shown in usage, named in refusals, recognised and read."""

    @property
    def label(self) -> str:
        """In usage lines: INC-n, sev1..sev4, @user, DURATION."""
        ...

    @property
    def noun(self) -> str:
        """In refusals: "an incident id (INC-n)"."""
        ...

    def claims(self, token: str) -> bool:
        """Whether an unquoted word is meant as this type (for optional and `Anywhere` parameters)."""
        ...

    def read(self, token: str, ctx: Context) -> Any:
        """The value, or UsageError saying in English what would fit."""
        ...


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Pos:
    name: str
    type: ArgType
    optional: bool = False
    many: bool = False  # every word left (at least one unless optional): a list

    def usage(self) -> str:
        shown = f"{self.type.label} ..." if self.many else self.type.label
        return f"[{shown}]" if self.optional else shown


@dataclass(frozen=True)
class Opt:
    name: str  # as typed before the colon: severity:sev2
    type: ArgType
    many: bool = False
    required: bool = False

    def usage(self) -> str:
        text = f"{self.name}:{self.type.label}" + (" ..." if self.many else "")
        return text if self.required else f"[{text}]"


@dataclass(frozen=True)
class Flag:
    flag: str  # without the dashes: dry-run

    @property
    def name(self) -> str:
        return self.flag.replace("-", "_")

    def usage(self) -> str:
        return f"[--{self.flag}]"


@dataclass(frozen=True)
class Keyword:
    name: str  # the word typed before the value: until 18:00
    type: ArgType
    optional: bool = False

    def usage(self) -> str:
        text = f"{self.name} {self.type.label}"
        return f"[{text}]" if self.optional else text


@dataclass(frozen=True)
class Anywhere:
    name: str
    type: ArgType
    many: bool = False

    def usage(self) -> str:
        return f"[{self.type.label}]"


@dataclass(frozen=True)
class Pairs:
    name: str

    def usage(self) -> str:
        return "[key=value ...]"


@dataclass(frozen=True)
class Rest:
    name: str
    required: bool = False
    quoted: bool = False  # only quoted words: an unquoted stray word is refused, not taken as text
    label: str = ""  # in usage; default: the name, e.g. "title"

    def usage(self) -> str:
        label = self.label or self.name
        shown = label if label.isupper() else f'"{label}"'  # ACCOUNT is a placeholder, "title" text
        return shown if self.required else f"[{shown}]"


Param = Pos | Opt | Flag | Keyword | Anywhere | Pairs | Rest




class Args(Mapping[str, Any]):
    """The values of one typed command, by parameter name, with who typed it and where."""

    def __init__(self, values: dict[str, Any], ctx: Context, *, bare: bool = False) -> None:
        self._values = values
        self.bare = bare  # nothing followed the verb
        self.actor = ctx.actor
        self.channel = ctx.channel
        self.command = ctx.command

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


Run = Callable[[Args], Reply]
