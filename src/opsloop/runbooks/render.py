"""Rendering runbook text: Jinja2 in a sandbox, strict about undefined names.

Templates see `inputs`, `item` (the work item as a plain dict), `steps.<id>`
(`status` and `outputs` of each step) and `secrets`. Two flavours:

- chat text (titles, details, notify messages): every user-supplied
  string (inputs, the item's title, labels, step outputs) is escaped for Slack
  mrkdwn first, so an input cannot ping `<!channel>`; `secrets.X` is an error,
  because a secret must never reach a chat message;
- http requests: values are used raw, and `secrets.X` renders as a marker
  (`⟦secret:X⟧`) that the remediation executor resolves at call time, so a
  rendered request can be shown, logged and approved without revealing a value.

The environment is Jinja2's ImmutableSandboxedEnvironment (no attribute
starting with `_`, no mutating `inputs.update(...)`), with multiplication and
powers bounded so `{{ 'x' * 10**9 }}` cannot exhaust memory.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from opsloop.errors import ConfigError
from opsloop.messages import escape

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
    return f"⟦secret:{name}⟧"


class ChatSecrets:
    """`secrets` as chat text sees it: using one is an error, never a value."""

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        raise RenderError(f"secrets.{name} cannot be used here: secrets are only resolved inside "
                          "http requests, never in chat text")

    def __getitem__(self, name: str) -> str:
        return self.__getattr__(name)


class RequestSecrets:
    """`secrets` inside an http request: names only, rendered as markers; records what was used."""

    def __init__(self, allowed: frozenset[str] | None = None) -> None:
        self._allowed = allowed
        self.used: set[str] = set()

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._allowed is not None and name not in self._allowed:
            known = ", ".join(sorted(self._allowed)) or "none"
            raise RenderError(f"secrets.{name} is not declared under actions.secrets in the policy "
                              f"(declared: {known})")
        self.used.add(name)
        return secret_marker(name)

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

    def chat(self) -> dict[str, Any]:
        return {"inputs": _escaped(self.inputs), "item": _escaped(self.item),
                "steps": _escaped(self.steps), "secrets": ChatSecrets()}

    def raw(self) -> dict[str, Any]:
        return {"inputs": dict(self.inputs), "item": dict(self.item),
                "steps": {k: dict(v) for k, v in self.steps.items()}, "secrets": ChatSecrets()}

    def request(self, secrets: RequestSecrets) -> dict[str, Any]:
        return {"inputs": dict(self.inputs), "item": dict(self.item),
                "steps": {k: dict(v) for k, v in self.steps.items()}, "secrets": secrets}


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
                   secrets: RequestSecrets | None = None) -> Any:
    """Render every string inside an http request (url, headers, json body), recursively."""
    secrets = secrets if secrets is not None else RequestSecrets(context.secret_names)
    variables = context.request(secrets)
    return _render_tree(value, variables, where)


def _render_tree(value: Any, variables: dict[str, Any], where: str) -> Any:
    if isinstance(value, str):
        return _run(value, variables, where)
    if isinstance(value, Mapping):
        return {k: _render_tree(v, variables, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_render_tree(v, variables, f"{where}[{i}]") for i, v in enumerate(value)]
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
