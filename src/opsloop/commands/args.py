"""The types of command arguments (see `grammar`): each recognises, reads and refuses one kind of value."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from opsloop.commands.grammar import Context
from opsloop.durations import parse_duration
from opsloop.errors import UsageError
from opsloop.types import Kind, Severity

COMMAND_OF = {Kind.INCIDENT: "/incident", Kind.ESCALATION: "/escalate", Kind.EXCEPTION: "/exception",
              Kind.MAINTENANCE: "/maintenance", Kind.TASK: "/runbook"}
_A = {Kind.INCIDENT: "an incident", Kind.ESCALATION: "an escalation", Kind.EXCEPTION: "an exception",
      Kind.MAINTENANCE: "a maintenance window", Kind.TASK: "a scheduled task"}
_REF = re.compile(r"^([A-Za-z]+)-(\d+)$")
_SEVERITY_LIKE = re.compile(r"^sev[-_]?\d+$", re.IGNORECASE)
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$|^@?([UW][A-Z0-9]{2,})$|^@([\w.\-']{1,80})$")
_DURATION_LIKE = re.compile(r"^\d+[a-z]", re.IGNORECASE)
_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

T = TypeVar("T")


def _either(words: tuple[str, ...] | list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


@dataclass(frozen=True)
class Choice:
    """One of a few words (`open|resolved|closed|all`), matched without regard to case."""

    choices: tuple[str, ...]
    noun: str
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", "|".join(self.choices))

    def claims(self, token: str) -> bool:
        return token.lower() in self.choices

    def read(self, token: str, ctx: Context) -> str:
        if token.lower() not in self.choices:
            raise UsageError(f"'{token}' is not {self.noun}: use {_either(self.choices)}")
        return token.lower()


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """A value recognised by how it looks (`looks`) and read by `parse`, whose ValueError refuses it:
    in the words of `refusal` (`{token}` is the word given), else in the parser's own."""

    label: str
    noun: str
    looks: re.Pattern[str]
    parse: Callable[[str], T]
    refusal: str = ""

    def claims(self, token: str) -> bool:
        return self.looks.match(token) is not None

    def read(self, token: str, ctx: Context) -> T:
        try:
            return self.parse(token)
        except ValueError as error:
            raise UsageError(self.refusal.format(token=token) if self.refusal else str(error)) from None


@dataclass(frozen=True)
class RefType:
    """A work item id of the given kinds (`INC-12`); another kind's id says which command takes it."""

    kinds: tuple[Kind, ...]

    @property
    def label(self) -> str:
        return "|".join(f"{k.prefix}-n" for k in self.kinds)

    @property
    def noun(self) -> str:
        if len(self.kinds) == 1:
            return f"{_A[self.kinds[0]]} id ({self.kinds[0].prefix}-n)"
        return f"a work item id ({', '.join(f'{k.prefix}-n' for k in self.kinds)})"

    def claims(self, token: str) -> bool:
        return _REF.match(token) is not None

    def read(self, token: str, ctx: Context) -> str:
        match = _REF.match(token)
        kind = None
        if match is not None:
            try:
                kind = Kind.from_prefix(match.group(1))
            except KeyError:
                kind = None
        if match is None or kind is None:
            raise UsageError(f"'{token}' is not {self.noun}")
        if kind not in self.kinds:
            ref = token.upper()
            raise UsageError(f"{ref} is {_A[kind]}: {ctx.command} takes {self.noun}; "
                             f"for {ref} use {COMMAND_OF[kind]}")
        return f"{kind.prefix}-{int(match.group(2))}"


@dataclass(frozen=True)
class UserType:
    """A person: `<@U123>` (Slack's mention), `U123`, or `@name`; checked through the directory."""

    label: str = "@user"
    noun: str = "a user (@name, <@U…> or a user id)"

    def claims(self, token: str) -> bool:
        return _MENTION.match(token) is not None

    def read(self, token: str, ctx: Context) -> str:
        if _MENTION.match(token) is None:
            raise UsageError(f"'{token}' is not a user: mention them (@name) or give their user id (U…)")
        return ctx.lookups.person(token)


@dataclass(frozen=True)
class Pattern:
    """A name with a shape (a runbook id, a step id, an account), with its refusal."""

    regex: str
    label: str
    noun: str
    lower: bool = False
    check: Callable[[str], str | None] | None = None  # a further check: the reason it is refused

    def claims(self, token: str) -> bool:
        return re.fullmatch(self.regex, token.lower() if self.lower else token) is not None

    def read(self, token: str, ctx: Context) -> str:
        value = token.lower() if self.lower else token
        if re.fullmatch(self.regex, value) is None:
            raise UsageError(f"'{token}' is not {self.noun}")
        why = self.check(value) if self.check else None
        if why:
            raise UsageError(why)
        return value


@dataclass(frozen=True)
class Words:
    """Free words (a time such as `mon 09:00`): read by the service that understands them."""

    label: str
    noun: str

    def claims(self, token: str) -> bool:
        return True

    def read(self, token: str, ctx: Context) -> str:
        return token


@dataclass(frozen=True)
class Number:
    label: str = "N"
    noun: str = "a number"
    low: int = 1
    high: int = 10_000

    def claims(self, token: str) -> bool:
        return token.isdigit()

    def read(self, token: str, ctx: Context) -> int:
        if not token.isdigit() or not self.low <= int(token) <= self.high:
            raise UsageError(f"'{token}' is not {self.noun} from {self.low} to {self.high}")
        return int(token)


SEVERITY = Parsed("sev1..sev4", "a severity (sev1..sev4)", _SEVERITY_LIKE, lambda t: Severity(t.lower()),
                  "'{token}' is not a severity: use sev1, sev2, sev3 or sev4")
DURATION = Parsed("DURATION", "a duration (30m, 4h, 7d)", _DURATION_LIKE, parse_duration)
USER = UserType()
TENANT = Pattern(_TENANT.pattern, "ID", "a tenant id (as in the account catalog, e.g. acme)", lower=True)
RUNBOOK_ID = Pattern(r"[a-z0-9][a-z0-9_.-]{0,99}", "ID", "a runbook id (e.g. db-failover)")
STEP_ID = Pattern(r"[a-z0-9][a-z0-9_]{0,63}", "STEP", "a step id (e.g. confirm_down)")
INCIDENT_ID = RefType((Kind.INCIDENT,))
ESCALATION_ID = RefType((Kind.ESCALATION,))
EXCEPTION_ID = RefType((Kind.EXCEPTION,))
ANY_ID = RefType((Kind.INCIDENT, Kind.ESCALATION, Kind.EXCEPTION, Kind.TASK))
MAINTENANCE_ID = RefType((Kind.MAINTENANCE,))
ITEM_ID = {Kind.INCIDENT: INCIDENT_ID, Kind.ESCALATION: ESCALATION_ID, Kind.EXCEPTION: EXCEPTION_ID,
           Kind.MAINTENANCE: MAINTENANCE_ID}
