"""How a slash command declares what it accepts, and the one parser that holds everyone to it.

A command is a list of verbs; a verb is a list of typed parameters and the
function that runs it. From that one declaration come the parsing, the
refusals (in English, naming what was wrong and how to type it) and the help:

    Command("/incident", "declare and drive incidents", [
        Verb("ack", "acknowledge it", Pos("ref", INCIDENT_ID), Rest("note"),
             aliases=("acknowledge",), run=acknowledge),
        Verb("severity", "change its severity", Pos("ref", INCIDENT_ID), Pos("severity", SEVERITY),
             Rest("reason"), run=change_severity),
    ])

Parameters (`usage` shows them in declaration order):

    Pos(name, type)            the next word, in order (`optional=True`: taken only when it fits)
    Opt(key, type)             `key:value` anywhere (`many=True`: may be given again)
    Flag(name)                 `--name` anywhere
    Keyword(word, type)        `word value...` anywhere, e.g. `until mon 09:00`
    Anywhere(name, type)       an unquoted word the type recognises, anywhere (`sev2`, `open`, `mine`)
    Pairs(name)                `key=value` anywhere (runbook inputs)
    Rest(name)                 the words left over: a title, a note, a reason (`quoted=True`: only
                               quoted text, so a mistyped word is refused rather than searched for)

Nothing is guessed: an unknown verb is refused with the closest verbs, a word
no parameter takes is refused, and a value that does not fit its type is
refused with what would fit. A command with a `default` verb (`/escalate
"title"`) runs it when the first word is no verb, unless that word looks like
a mistyped verb or the words hold a work item id: then it refuses, telling how
to do either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from opsloop.commands.params import (
    Anywhere,
    Args,
    ArgType,
    Context,
    Flag,
    Keyword,
    Lookups,
    Opt,
    Pairs,
    Param,
    Pos,
    Rest,
    Run,
)
from opsloop.commands.reader import read
from opsloop.commands.tokens import Token, closest, did_you_mean, either, tokens
from opsloop.errors import UsageError
from opsloop.messages import Reply

__all__ = ["Anywhere", "ArgType", "Args", "Command", "Context", "Flag", "Keyword", "Lookups", "Opt", "Pairs",
           "Param", "Pos", "Rest", "Run", "Verb"]

_REF_LIKE = re.compile(r"^(INC|ESC|EXC|MNT|ACT|TSK|PLAY)-\d+$", re.IGNORECASE)  # work item ids


# --------------------------------------------------------------------------- verbs and commands


@dataclass(frozen=True)
class Verb:
    name: str
    help: str
    params: tuple[Param, ...]
    run: Run
    aliases: tuple[str, ...] = ()
    bare: Run | None = None  # run instead when nothing follows the verb (e.g. open the declare form)

    def __init__(self, name: str, help: str, *params: Param, run: Run, aliases: tuple[str, ...] = (),
                 bare: Run | None = None) -> None:
        object.__setattr__(self, "bare", bare)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "help", help)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "run", run)
        object.__setattr__(self, "aliases", aliases)

    def usage(self, command: str, *, default: bool = False) -> str:
        words = [command] if default else [command, self.name]
        return " ".join([*words, *(p.usage() for p in self.params)])


@dataclass
class Command:
    """A slash command: its verbs (more can be added by other features), and a verb to run when
    the first word is none (`/escalate "title"` opens an escalation)."""

    name: str
    summary: str
    verbs: list[Verb]
    default: str | None = None  # the verb run when the first word is no verb
    footer: str = ""  # a last line of help
    # after "did you mean X?" when the default verb will not run: how to mean the default instead
    hint: str = ""
    _index: dict[str, Verb] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for verb in self.verbs:
            self._register(verb)

    def add(self, *verbs: Verb) -> None:
        """More verbs for this command (from another feature)."""
        for verb in verbs:
            self.verbs.append(verb)
            self._register(verb)

    def _register(self, verb: Verb) -> None:
        for word in (verb.name, *verb.aliases):
            if word in self._index or word == "help":
                raise ValueError(f"{self.name}: the verb {word!r} is declared twice")
            self._index[word] = verb

    def verb(self, word: str) -> Verb | None:
        return self._index.get(word.lower())

    @property
    def words(self) -> list[str]:
        return [*self._index, "help"]

    # ------------------------------------------------------------------ running

    def run(self, text: str, ctx: Context) -> Reply:
        verb, args = self.parse(text, ctx)
        if verb is None:
            return Reply(self.help())
        if verb.bare is not None and args.bare:
            return verb.bare(args)
        return verb.run(args)

    def asks_for_help(self, text: str) -> bool:
        """`text` asks for this command's help (nothing, where no verb runs by default, or `help`):
        answered from the grammar alone, with nothing to read or write."""
        try:
            words = tokens(text)
        except UsageError:
            return False  # an unclosed quote ...: the command itself says what is wrong
        if not words:
            return self.default is None
        return not words[0].quoted and words[0].text.lower() == "help"

    def parse(self, text: str, ctx: Context) -> tuple[Verb | None, Args]:
        """The verb and its values (None: help was asked for), or UsageError."""
        if self.asks_for_help(text):
            return None, Args({}, ctx)
        words = tokens(text)
        first = words[0] if words else None
        verb = self.verb(first.text) if first is not None and not first.quoted else None
        if verb is not None and verb.bare is not None and len(words) == 1:
            return verb, Args({}, ctx, bare=True)
        if verb is not None:
            return verb, Args(read(verb.params, words[1:], ctx, where=f"{self.name} {verb.name}",
                                    usage=verb.usage(self.name)), ctx)
        if self.default is None:
            assert first is not None
            raise UsageError(self._unknown(first.text))
        fallback = self._index[self.default]
        if not words and fallback.bare is not None:
            return fallback, Args({}, ctx, bare=True)
        self._refuse_guesses(words, fallback)
        return fallback, Args(read(fallback.params, words, ctx, where=self.name,
                                  usage=fallback.usage(self.name, default=True)), ctx)

    def _unknown(self, word: str) -> str:
        hint = f". {self.hint}" if self.hint else ""
        return (f"unknown verb '{word}'{did_you_mean(word, self.words)} "
                f"(verbs: {', '.join(v.name for v in self.verbs)}; `{self.name} help` says more){hint}")

    def _refuse_guesses(self, words: list[Token], fallback: Verb) -> None:
        """A default verb never runs on what looks like a mistyped verb or names a work item."""
        first = words[0] if words else None
        if first is None or first.quoted:
            return
        near = closest(first.text, self.words, cutoff=0.75)
        refs = [w.text for w in words if not w.quoted and _REF_LIKE.match(w.text)]
        if not near and not refs:
            return
        usage = fallback.usage(self.name, default=True)
        hint = self.hint or f"To {fallback.help}, quote its title: `{usage}`"
        if near:
            raise UsageError(f"unknown verb '{first.text}' — did you mean {either(near)}? {hint}")
        raise UsageError(f"{refs[0]} names a work item, but '{first.text}' is no verb of {self.name} "
                         f"(verbs: {', '.join(v.name for v in self.verbs)}). {hint}")

    # ------------------------------------------------------------------ help

    def help(self) -> str:
        lines = [f"*{self.name}* — {self.summary}"]
        verbs = sorted(self.verbs, key=lambda v: v.name != self.default)  # the default verb first
        for verb in verbs:
            also = f" (or {', '.join(verb.aliases)})" if verb.aliases else ""
            usage = verb.usage(self.name, default=verb.name == self.default)
            lines.append(f"• `{usage}` — {verb.help}{also}")
        lines.append(f"• `{self.name} help` — this list")
        if self.footer:
            lines.append(self.footer)
        return "\n".join(lines)


