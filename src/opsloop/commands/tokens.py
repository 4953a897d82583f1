"""Reading what people type: words (with what was quoted), and the nearest of a few choices."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from opsloop.errors import UsageError

# the curly double and single quotes that Slack clients type
_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'"})


@dataclass(frozen=True)
class Token:
    text: str
    quoted: bool = False  # it began with a quote: it is text, never a verb, option or flag


def tokens(text: str) -> list[Token]:
    """Split on spaces, as a shell does for quotes: "double quotes" anywhere (a backslash escapes `"`
    and itself inside them), 'single quotes' at a word's start or right after another quote (so an
    apostrophe as in can't stays a letter, and shlex.quote's output reads back); outside quotes a
    backslash takes the next character as it is."""
    out: list[Token] = []
    text = text.translate(_QUOTES)
    word: list[str] = []
    quoted = started = just_closed = False
    i = 0
    while i < len(text):
        char = text[i]
        closed = False
        if char.isspace():
            if started:
                out.append(Token("".join(word), quoted))
                word, quoted, started = [], False, False
        elif char == "\\" and i + 1 < len(text):
            i += 1
            word.append(text[i])
            started = True
        elif char == '"' or (char == "'" and (not started or just_closed)):
            end = text.find("'", i + 1) if char == "'" else _closing(text, i + 1)
            if end < 0:
                raise UsageError("cannot read that: a quote is not closed (close your quotes)")
            inside = text[i + 1:end]
            if char == '"':
                inside = re.sub(r'\\(["\\])', r"\1", inside)
            quoted = quoted or not started  # `tenant:"a b"` is still an option; `"sev5"` is text
            word.append(inside)
            started = closed = True
            i = end
        else:
            word.append(char)
            started = True
        just_closed = closed
        i += 1
    if started:
        out.append(Token("".join(word), quoted))
    return out


def _closing(text: str, start: int) -> int:
    """Where the double quote opened before `start` closes (-1: never)."""
    i = start
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return -1



def closest(word: str, choices: Sequence[str], *, cutoff: float = 0.6) -> list[str]:
    """The choices nearest to `word` (a typo's candidates), best first: those about as near as the
    nearest (`resovle` is resolve, not also resume), then those it begins (`ass` for assign)."""
    lowered = word.lower()
    scored = sorted(((difflib.SequenceMatcher(None, lowered, c).ratio(), c) for c in dict.fromkeys(choices)),
                    key=lambda pair: -pair[0])
    best = scored[0][0] if scored else 0.0
    found = [c for score, c in scored if score >= cutoff and score >= best - 0.1]
    prefixed = [c for c in choices if len(lowered) >= 2 and c.startswith(lowered) and c not in found]
    return (found + prefixed)[:3]


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    near = closest(word, choices)
    return f" — did you mean {either(near)}?" if near else ""


def either(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
