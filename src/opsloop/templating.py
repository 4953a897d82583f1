"""One way to render text templates: Jinja2's sandbox, where an undefined name is an error.

Templates come from policy and runbook files, so they are treated as
untrusted: the sandbox refuses attribute tricks such as `''.__class__`, and
`StrictUndefined` turns a misspelt name into an error instead of a silent
blank. Escaping for a surface (Slack mrkdwn) is the caller's business.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from opsloop.errors import InvalidInput


def sandbox(loader: BaseLoader | None = None) -> SandboxedEnvironment:
    return SandboxedEnvironment(loader=loader, undefined=StrictUndefined, autoescape=False,
                                trim_blocks=True, lstrip_blocks=True)


def check_syntax(env: SandboxedEnvironment, source: str) -> str | None:
    """The syntax error in `source`, or None."""
    try:
        env.parse(source)
    except TemplateError as error:
        return str(error)
    return None


def render(env: SandboxedEnvironment, source: str, context: dict[str, Any], *, what: str) -> str:
    try:
        return _compiled(env, source).render(**context).strip()
    except TemplateError as error:
        raise InvalidInput(f"{what}: {error}") from None


@lru_cache(maxsize=1024)
def _compiled(env: SandboxedEnvironment, source: str) -> Template:
    """Compiling is most of a render's cost (about 4 ms a template), and a few sources recur."""
    return env.from_string(source)
