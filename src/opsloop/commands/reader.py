"""Reading a verb's words into its parameters' values, or refusing them in English."""

from __future__ import annotations

import re
from typing import Any

from opsloop.commands.params import Anywhere, ArgType, Context, Flag, Keyword, Opt, Pairs, Param, Pos, Rest
from opsloop.commands.tokens import Token, closest, did_you_mean, either
from opsloop.errors import UsageError

_OPTION = re.compile(r"^([a-z][a-z_]*):(.*)$", re.DOTALL)
_FLAG = re.compile(r"^--[a-z][a-z-]*$")
_PAIR = re.compile(r"^([a-z][a-z0-9_]*)=(.*)$", re.DOTALL)


def read(params: tuple[Param, ...], words: list[Token], ctx: Context, *, where: str,
         usage: str) -> dict[str, Any]:
    """Sort the words into the parameters and read each value with its type; `where` (`/incident ack`)
    and `usage` (its usage line) go into refusals."""
    usage = f"usage: `{usage}`"
    values: dict[str, Any] = {}
    for param in params:
        if isinstance(param, (Opt, Anywhere, Pos)) and param.many:
            values[param.name] = []
        elif isinstance(param, Flag):
            values[param.name] = False
        elif isinstance(param, Pairs):
            values[param.name] = {}
        else:
            values[param.name] = None
    options = {p.name: p for p in params if isinstance(p, Opt)}
    flags = {p.flag: p for p in params if isinstance(p, Flag)}
    keywords = {p.name: p for p in params if isinstance(p, Keyword)}
    anywhere = [p for p in params if isinstance(p, Anywhere)]
    pairs = next((p for p in params if isinstance(p, Pairs)), None)
    rest = next((p for p in params if isinstance(p, Rest)), None)

    def fail(reason: str) -> UsageError:
        return UsageError(f"{where}: {reason} — {usage}")

    stream: list[Token] = []
    i = 0
    while i < len(words):
        token = words[i]
        i += 1
        text = token.text
        if token.quoted and not (pairs is not None and rest is None and _PAIR.match(text)):
            stream.append(token)  # quoted: text, unless the verb takes key=value inputs and no text
            continue
        if _FLAG.match(text):
            flag = flags.get(text[2:])
            if flag is None:
                known = [f"--{f}" for f in flags]
                raise fail(f"unknown flag {text}{did_you_mean(text, known)}" if known
                           else f"{text} is not a flag of {where}")
            values[flag.name] = True
            continue
        option = _OPTION.match(text)
        if option and option.group(1) in options:
            opt = options[option.group(1)]
            if not option.group(2):
                raise fail(f"{opt.name}: needs a value, e.g. {opt.name}:{opt.type.label}")
            value = _read(opt.type, option.group(2), ctx, f"{opt.name}: ")
            if opt.many:
                values[opt.name].append(value)
            elif values[opt.name] is not None:
                raise fail(f"{opt.name}: given twice; give it once")
            else:
                values[opt.name] = value
            continue
        if option and options:
            near = closest(option.group(1), list(options), cutoff=0.7)
            if near:
                keys = either([n + ":" for n in near])
                raise fail(f"unknown option '{option.group(1)}:' — did you mean {keys}?")
        if text.lower() in keywords:
            keyword = keywords[text.lower()]
            taken: list[str] = []
            while i < len(words) and (words[i].quoted or not _ends_keyword(words[i].text, keywords, options,
                                                                          anywhere)):
                taken.append(words[i].text)
                i += 1
            if not taken:
                raise fail(f"{keyword.name}: needs {keyword.type.noun} after it")
            if values[keyword.name] is not None:
                raise fail(f"{keyword.name}: given twice; give it once")
            values[keyword.name] = _read(keyword.type, " ".join(taken), ctx, f"{keyword.name}: ")
            continue
        claimed = next((p for p in anywhere if p.type.claims(text)), None)
        if claimed is not None:
            value = _read(claimed.type, text, ctx, "")
            if claimed.many:
                if value not in values[claimed.name]:
                    values[claimed.name].append(value)
            elif values[claimed.name] is not None and values[claimed.name] != value:
                raise fail(f"give {claimed.type.noun} once, not {values[claimed.name]} and {value}")
            else:
                values[claimed.name] = value
            continue
        pair = _PAIR.match(text)
        if pair and pairs is not None:
            if pair.group(1) in values[pairs.name]:
                raise fail(f"{pair.group(1)}: given twice; give it once")
            values[pairs.name][pair.group(1)] = pair.group(2)
            continue
        stream.append(token)

    for param in params:
        if isinstance(param, Pos) and param.many:
            if not stream and not param.optional:
                raise UsageError(f"{where} needs {param.type.noun} — {usage}")
            values[param.name] = [_read(param.type, t.text, ctx, "") for t in stream]
            stream = []
        elif isinstance(param, Pos):
            if not stream or (param.optional and (stream[0].quoted or not param.type.claims(stream[0].text))):
                if not param.optional:
                    raise UsageError(f"{where} needs {param.type.noun} — {usage}")
                continue
            values[param.name] = _read(param.type, stream.pop(0).text, ctx, "")
        elif isinstance(param, Opt) and param.required and values[param.name] in (None, []):
            raise UsageError(f"{where} needs {param.name}:{param.type.label} — {usage}")
        elif isinstance(param, Keyword) and not param.optional and values[param.name] is None:
            raise UsageError(f"{where} needs `{param.name} {param.type.label}` — {usage}")
    if rest is not None:
        if rest.quoted:
            stray = next((t for t in stream if not t.quoted), None)
            if stray is not None:
                raise fail(_stray(stray.text, anywhere, options, pairs, rest))
        text = " ".join(t.text for t in stream).strip()
        if rest.required and not text:
            raise UsageError(f"{where} needs {_needs(rest)} — {usage}")
        values[rest.name] = text or None
    elif stream:
        raise fail(_stray(stream[0].text, anywhere, options, pairs, rest) if not stream[0].quoted
                   else f'"{stream[0].text}" is more than {where} takes')
    return values


def _ends_keyword(text: str, keywords: dict[str, Keyword], options: dict[str, Opt],
                  anywhere: list[Anywhere]) -> bool:
    """A keyword's words run up to the next keyword, option, flag or word another parameter claims
    (`until +2h tenant:acme`: the time is `+2h`)."""
    option = _OPTION.match(text)
    return (text.lower() in keywords or (option is not None and option.group(1) in options)
            or _FLAG.match(text) is not None or any(p.type.claims(text) for p in anywhere))


def _read(kind: ArgType, token: str, ctx: Context, prefix: str) -> Any:
    try:
        return kind.read(token, ctx)
    except UsageError as error:
        raise UsageError(f"{prefix}{error}") from None


def _stray(word: str, anywhere: list[Anywhere], options: dict[str, Opt], pairs: Pairs | None,
           rest: Rest | None) -> str:
    """Why a word no parameter took is refused, with what was probably meant."""
    if pairs is not None:
        return f"'{word}' is not understood: give {pairs.name} as key=value (quote values with spaces)"
    search = " (quote text to search for it)" if rest is not None and rest.quoted else ""
    known = [w for p in anywhere for w in getattr(p.type, "choices", ())] + [f"{k}:" for k in options]
    near = closest(word, known) if known else []
    if near:
        return f"'{word}' is not understood — did you mean {either(near)}?{search}"
    if known:
        return f"'{word}' is not understood (it takes {either(known)}){search}"
    return f"'{word}' is one word too many"


def _needs(rest: Rest) -> str:
    """`a title`, `a reason`, but `"what changed"`."""
    label = rest.label or rest.name
    if " " in label or label.isupper():
        return f'"{label}"' if not label.isupper() else label
    return f"an {label}" if label[:1] in "aeiou" else f"a {label}"
