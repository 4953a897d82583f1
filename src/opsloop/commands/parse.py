"""Reading what people type after a slash command."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from opsloop.errors import UsageError

# the curly double and single quotes that Slack clients type
_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'"})
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$|^@?([UW][A-Z0-9]{2,})$")
_OPTION = re.compile(r"^([a-z][a-z_]*):(.+)$")
_REF = re.compile(r"^(INC|ESC|EXC)-\d+$", re.IGNORECASE)


def tokens(text: str) -> list[str]:
    """Split like a shell, after turning the curly quotes Slack clients type into straight ones."""
    try:
        return shlex.split(text.translate(_QUOTES))
    except ValueError as error:
        raise UsageError(f"cannot read that: {error} (close your quotes)") from None


def mention(token: str) -> str | None:
    """`<@U123|ann>`, `<@U123>`, `@U123` or `U123` -> `U123`."""
    match = _MENTION.match(token)
    return None if match is None else (match.group(1) or match.group(2))


def is_ref(token: str) -> bool:
    return _REF.match(token) is not None


@dataclass
class Words:
    """A command's words sorted into free text, `key:value` options and severities."""

    text: list[str] = field(default_factory=list)
    options: dict[str, list[str]] = field(default_factory=dict)
    severity: str | None = None

    def option(self, key: str) -> str | None:
        values = self.options.get(key)
        if values and len(values) > 1:
            raise UsageError(f"{key}: given {len(values)} times; give it once")
        return values[0] if values else None


def sort_words(words: list[str], *, options: set[str]) -> Words:
    out = Words()
    for word in words:
        option = _OPTION.match(word)
        if option and option.group(1) in options:
            out.options.setdefault(option.group(1), []).append(option.group(2))
        elif re.fullmatch(r"sev[1-4]", word, re.IGNORECASE):
            if out.severity is not None:
                raise UsageError("give one severity (sev1 .. sev4)")
            out.severity = word.lower()
        else:
            out.text.append(word)
    return out
