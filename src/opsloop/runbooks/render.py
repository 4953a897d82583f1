"""Rendering runbook text: Jinja2 in a sandbox, strict about undefined names.

Templates see `inputs`, `item` (the work item as a plain dict), `steps.<id>`
(`status` and `outputs` of each step) and `secrets`. Two flavours:

- chat text (titles, details, notify messages): every user-supplied
  string (inputs, the item's title, labels, step outputs) is escaped for Slack
  mrkdwn first, so an input cannot ping `<!channel>`; `secrets.X` is an error,
  because a secret must never reach a chat message;
- http requests: values are used raw, and `secrets.X` renders as a reference
  (`⟦secret:X⟧`) that the remediation executor resolves at call time, so a
  rendered request can be shown, logged and approved without revealing a value.
  Only the template's own text can write a reference: while rendering, a
  secret is a marker carrying a random nonce of this render, which no data
  can know; afterwards the markers become references and everything else is
  escaped as data (`opsloop.remediation.secrets`). `secrets` may only be used
  as `secrets.NAME` (or `secrets['NAME']`), so the names a template uses are
  in its text.

The environment is Jinja2's ImmutableSandboxedEnvironment (no attribute
starting with `_`, no mutating `inputs.update(...)`), with multiplication and
powers bounded so `{{ 'x' * 10**9 }}` cannot exhaust memory.
"""

from __future__ import annotations

import operator
import re
import secrets as random_tokens
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from opsloop.errors import ConfigError
from opsloop.messages import escape
from opsloop.remediation.secrets import escape as escape_request
from opsloop.remediation.secrets import reference

MAX_OUTPUT = 20_000  # characters one template may produce
_MAX_ITEMS = 100_000  # largest string/list a `*` may build
_MAX_EXPONENT = 64


class RenderError(ConfigError):
    """A runbook template cannot be rendered: a syntax error, an undefined name, a sandbox escape."""


def _finalize(value: Any) -> Any:
    return "" if value is None else value


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
                raise RenderError(f"exponent {right} is too large (at most {_MAX_EXPONENT})")
            return operator.pow(left, right)
        if operator_ == "*":
            for sized, times in ((left, right), (right, left)):
                if isinstance(sized, str | list | tuple) and isinstance(times, int) and (
                    len(sized) * times > _MAX_ITEMS
                ):
                    raise RenderError(f"a repetition would build {len(sized) * times} items; "
                                      f"at most {_MAX_ITEMS}")
            return operator.mul(left, right)
        return super().call_binop(context, operator_, left, right)


ENV = _Environment(undefined=StrictUndefined, autoescape=False, finalize=_finalize)


@lru_cache(maxsize=2048)
def _template(source: str) -> Any:
    return ENV.from_string(source)


@lru_cache(maxsize=1024)
def _expression(source: str) -> Callable[..., Any]:
    return ENV.compile_expression(source, undefined_to_none=False)


def check_syntax(source: str, *, expression: bool = False) -> None:
    """Raise ValueError naming the problem when `source` is not a valid template (or expression)."""
    try:
        if expression:
            _expression(source)
        else:
            _template(source)
    except TemplateSyntaxError as error:
        raise ValueError(f"template syntax error: {error.message} (line {error.lineno})") from None


# --------------------------------------------------------------------------- secrets


def secret_marker(name: str) -> str:
    """How a secret is written in a rendered request (see opsloop.remediation.secrets)."""
    return reference(name)


@lru_cache(maxsize=2048)
def secrets_named(source: str) -> frozenset[str]:
    """The secrets a template's text names; RenderError if it uses `secrets` any other way."""
    try:
        tree = ENV.parse(source)
    except TemplateSyntaxError:
        return frozenset()  # rendering reports it
    names: set[str] = set()
    direct = 0
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not (isinstance(node, nodes.Getattr | nodes.Getitem) and isinstance(node.node, nodes.Name)
                and node.node.name == "secrets"):
            continue
        if isinstance(node, nodes.Getattr):
            names.add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            names.add(node.arg.value)
        else:
            continue
        direct += 1
    used = sum(1 for name in tree.find_all(nodes.Name) if name.name == "secrets")
    if used != direct:
        raise RenderError("secrets can only be named in the template itself, as secrets.NAME")
    return frozenset(names)


class ChatSecrets:
    """`secrets` as chat text sees it: using one is an error, never a value."""

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        raise RenderError(f"secrets.{name} cannot be used here: secrets are only resolved inside "
                          "http requests, never in chat text")

    def __getitem__(self, name: str) -> str:
        return self.__getattr__(name)


# a secret's marker while rendering; only those carrying this render's nonce are markers (one compiled
# pattern: a pattern per render would be compiled anew for every request of a 10,000-tenant rollout)
_MARKER = re.compile(r"⟦secret:([A-Za-z_][A-Za-z0-9_]*)#([0-9a-f]{32})⟧")


class RequestSecrets:
    """`secrets` inside an http request: names only, rendered as markers; records what was used.

    A marker carries this render's random nonce; `finish` turns the markers back into references
    and escapes everything else, so text from data cannot pass for one."""

    def __init__(self, allowed: frozenset[str] | None = None) -> None:
        self._allowed = allowed
        self.used: set[str] = set()
        self._nonce = random_tokens.token_hex(16)

    def finish(self, rendered: str, named: frozenset[str]) -> str:
        """Rendered text as request text: markers of the secrets `named` in the template's own
        text become references, and everything else is escaped as data."""
        out: list[str] = []
        position = 0
        for match in _MARKER.finditer(rendered):
            if match.group(2) != self._nonce:  # not this render's: data that looks like a marker
                continue
            if match.group(1) not in named:
                raise RenderError("secrets can only be named in the template itself, as secrets.NAME")
            out += [escape_request(rendered[position:match.start()]), reference(match.group(1))]
            position = match.end()
        out.append(escape_request(rendered[position:]))
        return "".join(out)

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._allowed is not None and name not in self._allowed:
            known = ", ".join(sorted(self._allowed)) or "none"
            raise RenderError(f"secrets.{name} is not declared under actions.secrets in the policy "
                              f"(declared: {known})")
        self.used.add(name)
        return f"⟦secret:{name}#{self._nonce}⟧"

    def __getitem__(self, name: str) -> str:
        return self.__getattr__(name)


# --------------------------------------------------------------------------- contexts


@dataclass
class Context:
    """What a template sees. `steps` maps step id -> {"status": ..., "outputs": {...}}."""

    inputs: Mapping[str, Any]
    item: Mapping[str, Any]
    steps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    secret_names: frozenset[str] | None = None  # None: any name (nothing is resolved here anyway)
    # a `foreach: tenants` step's call: the tenant's public catalog fields (absent elsewhere, so
    # `tenant` in any other template is an undefined name)
    tenant: Mapping[str, Any] | None = None

    def _tenant(self, escaped: bool) -> dict[str, Any]:
        if self.tenant is None:
            return {}
        return {"tenant": _escaped(self.tenant) if escaped else dict(self.tenant)}

    def chat(self) -> dict[str, Any]:
        return {"inputs": _escaped(self.inputs), "item": _escaped(self.item),
                "steps": _escaped(self.steps), "secrets": ChatSecrets(), **self._tenant(True)}

    def raw(self) -> dict[str, Any]:
        return {"inputs": dict(self.inputs), "item": dict(self.item),
                "steps": {k: dict(v) for k, v in self.steps.items()}, "secrets": ChatSecrets(),
                **self._tenant(False)}

    def request(self, secrets: RequestSecrets) -> dict[str, Any]:
        return {"inputs": dict(self.inputs), "item": dict(self.item),
                "steps": {k: dict(v) for k, v in self.steps.items()}, "secrets": secrets,
                **self._tenant(False)}


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, Mapping):
        return {k: _escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(v) for v in value]
    return value


def _run(source: str, variables: dict[str, Any], where: str) -> str:
    try:
        text = str(_template(source).render(variables))
    except RenderError as error:
        raise RenderError(f"{where}: {error}") from None
    except TemplateError as error:  # UndefinedError, SecurityError, TemplateSyntaxError
        raise RenderError(f"{where}: {error.message or type(error).__name__}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as error:
        raise RenderError(f"{where}: {type(error).__name__}: {error}") from None
    if len(text) > MAX_OUTPUT:
        raise RenderError(f"{where}: renders {len(text)} characters; at most {MAX_OUTPUT}")
    return text


def render_chat(source: str, context: Context, *, where: str) -> str:
    """Render text meant for people (Slack mrkdwn); user-supplied values arrive escaped."""
    return _run(source, context.chat(), where)


def render_request(value: Any, context: Context, *, where: str,
                   secrets: RequestSecrets | None = None, typed: bool = False) -> Any:
    """Render every string inside an http request (url, headers, json body), recursively, into
    request text (see opsloop.remediation.secrets).

    `typed` (a JSON body): a string that is one whole `{{ expression }}` whose value is a number
    or a boolean (an `integer` input, a numeric output) becomes that JSON value, not its text."""
    secrets = secrets if secrets is not None else RequestSecrets(context.secret_names)
    variables = context.request(secrets)
    return _render_tree(value, variables, where, secrets, typed)


_WHOLE = re.compile(r"\s*\{\{(?P<expression>[^{}]+)\}\}\s*")


def _native(source: str, variables: dict[str, Any]) -> bool | int | float | None:
    """The value of a string that is exactly one expression, when it is a number or a boolean."""
    found = _WHOLE.fullmatch(source)
    if found is None:
        return None
    try:
        value = _expression(found["expression"].strip())(**variables)
    except Exception:  # anything odd renders as text, which reports it properly
        return None
    return value if isinstance(value, bool | int | float) else None


def _render_tree(value: Any, variables: dict[str, Any], where: str, secrets: RequestSecrets,
                 typed: bool = False) -> Any:
    if isinstance(value, str):
        try:
            named = secrets_named(value)
        except RenderError as error:
            raise RenderError(f"{where}: {error}") from None
        if typed and not named and (native := _native(value, variables)) is not None:
            return native
        return secrets.finish(_run(value, variables, where), named)
    if isinstance(value, Mapping):
        return {k: _render_tree(v, variables, f"{where}.{k}", secrets, typed) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_tree(v, variables, f"{where}[{i}]", secrets, typed) for i, v in enumerate(value)]
    return value


def evaluate(expression: str, context: Context, *, where: str) -> bool:
    """A `when` condition: a Jinja2 expression over the raw values (it is never shown)."""
    try:
        return bool(_expression(expression)(**context.raw()))
    except RenderError as error:
        raise RenderError(f"{where}: {error}") from None
    except TemplateError as error:
        raise RenderError(f"{where}: {error.message or type(error).__name__}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as error:
        raise RenderError(f"{where}: {type(error).__name__}: {error}") from None
