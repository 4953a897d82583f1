"""`opsloop runbooks check`: every runbook valid, renderable, consistent with the policy, and
never changed without raising its version (against git history and pinned snapshots)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

from opsloop.errors import ConfigError
from opsloop.policy import Policy
from opsloop.runbooks.loader import Library, LoadedRunbook, parse
from opsloop.runbooks.render import (
    Context,
    RenderError,
    RequestSecrets,
    evaluate,
    render_chat,
    render_request,
)
from opsloop.runbooks.schema import (
    ApprovalStep,
    HttpRequest,
    HttpStep,
    Input,
    NotifyStep,
    Runbook,
    step_title,
)
from opsloop.runbooks.versions import Version

_CANDIDATES = ("sample", "sample-1", "example", "a", "1", "a1", "sample_1", "Sample", "A", "x-1")
SAMPLE_ITEM = {"id": "INC-1", "ref": "INC-1", "kind": "incident", "title": "Sample incident <for check>",
               "severity": "sev2", "state": "triggered", "tenants": ["acme"], "labels": {"service": "api"},
               "owner": "U0SAMPLE", "channel": "C0SAMPLE"}
SAMPLE_TENANT = {"id": "acme", "name": "Acme <Corp>", "tier": "enterprise", "region": "eu",
                 "renewal_date": "2027-03-31", "band": "healthy"}


@dataclass(frozen=True)
class Finding:
    runbook: str
    problem: str

    def __str__(self) -> str:
        return f"{self.runbook}: {self.problem}"


class History(Protocol):
    """Earlier contents of a runbook file (git, in the CLI)."""

    def committed(self, path: str) -> bytes | None:
        """The file as of the last commit, or None when it was never committed."""
        ...

    def revisions(self, path: str) -> Sequence[tuple[str, bytes]]:
        """Every committed content of the file, newest first, as (revision, bytes)."""
        ...


@dataclass(frozen=True)
class Pinned:
    runbook_id: str
    version: str
    sha256: str


# --------------------------------------------------------------------------- content


def sample_value(name: str, spec: Input) -> tuple[Any, str | None]:
    """A value to trial-render with: the default, the example, or a guess that fits the type."""
    if spec.default is not None:
        return spec.default, None
    if spec.example is not None:
        return spec.example, None
    if spec.type == "integer":
        return 1, None
    if spec.type == "boolean":
        return True, None
    for candidate in _CANDIDATES:
        try:
            return spec.accept(candidate), None
        except Exception:  # noqa: S112 - the next candidate may fit the pattern
            continue
    return None, f"inputs.{name}: give an `example` that matches {spec.pattern}, so templates can be " \
                 "trial-rendered"


def trial_render(runbook: Runbook, policy: Policy | None) -> list[str]:
    """Render every template once with sample inputs, as if every step had been done."""
    problems: list[str] = []
    inputs: dict[str, Any] = {}
    for name, spec in runbook.inputs.items():
        value, problem = sample_value(name, spec)
        if problem:
            problems.append(problem)
        inputs[name] = value
    steps = {
        s.id: {"status": "done",
               "outputs": {k: f"sample-{k}" for k in (s.outputs if isinstance(s, HttpStep) else {})}}
        for s in runbook.steps
    }
    secrets = frozenset(policy.actions.secrets) if policy is not None else None
    context = Context(inputs=inputs, item=SAMPLE_ITEM, steps=steps, secret_names=secrets)
    for i, step in enumerate(runbook.steps):
        where = f"steps[{i}] ({step.id})"
        try:
            render_chat(step_title(step) if not isinstance(step, HttpStep) else (step.title or ""),
                        context, where=f"{where}.title")
            if step.details:
                render_chat(step.details, context, where=f"{where}.details")
            if step.when:
                evaluate(step.when, context, where=f"{where}.when")
            if isinstance(step, NotifyStep):
                render_chat(step.message, context, where=f"{where}.message")
            if isinstance(step, HttpStep):
                per_tenant = replace(context, tenant=SAMPLE_TENANT) if step.foreach else context
                requests = [("request", step.request)]
                if step.rollback is not None:
                    requests.append(("rollback", step.rollback))
                for name, request in requests:
                    problems += _trial_request(request, per_tenant, f"{where}.{name}", secrets, policy)
        except RenderError as error:
            problems.append(str(error))
    return problems


def _trial_request(request: HttpRequest, context: Context, where: str, secrets: frozenset[str] | None,
                   policy: Policy | None) -> list[str]:
    url = render_request(request.url, context, where=f"{where}.url", secrets=RequestSecrets(secrets))
    render_request(dict(request.headers), context, where=f"{where}.headers")
    render_request(request.json_body, context, where=f"{where}.json", typed=True)
    host = urlsplit(url).hostname or ""
    if policy is not None and host not in policy.actions.allow_hosts:
        allowed = ", ".join(policy.actions.allow_hosts) or "none"
        return [f"{where}.url: host {host!r} is not in the policy's actions.allow_hosts ({allowed})"]
    return []


def policy_problems(runbook: Runbook, policy: Policy) -> list[str]:
    """Names the runbook uses that the policy must define: channels and roles."""
    problems = []
    for i, step in enumerate(runbook.steps):
        where = f"steps[{i}] ({step.id})"
        if isinstance(step, NotifyStep) and step.channel not in policy.channels:
            problems.append(f"{where}.channel: unknown channel {step.channel!r} "
                            f"(the policy defines: {', '.join(policy.channels)})")
        approvers = [(f"{where}.approvers", step.approvers)] if isinstance(step, ApprovalStep) else []
        if isinstance(step, HttpStep) and step.fleet is not None:
            approvers += [(f"{where}.waves[{n}].approval.approvers", wave.approval.approvers)
                          for n, wave in enumerate(step.fleet.waves) if wave.approval is not None]
        for place, names in approvers:
            for approver in names:
                role = approver.removeprefix("role:")
                if approver.startswith("role:") and role not in policy.roles:
                    problems.append(f"{place}: unknown role {role!r}")
    return problems


def routing_problems(library: Library, policy: Policy) -> list[str]:
    """Every runbook the routing tree names must exist, load, and be allowed to start."""
    problems = []
    named = [(f"routing[{i}].runbook", route.runbook) for i, route in enumerate(policy.routing)]
    named += [(f"schedules.{name}.runbook", schedule.runbook) for name, schedule in policy.schedules.items()]
    for where, runbook_id in named:
        if runbook_id is None:
            continue
        if runbook_id not in library.ids():
            problems.append(f"{where}: no runbook {runbook_id!r} in {library.directory}")
            continue
        try:
            loaded = library.load(runbook_id)
        except ConfigError as error:
            problems.append(f"{where}: {runbook_id} is invalid: {error}")
            continue
        if loaded.runbook.status == "retired":
            problems.append(f"{where}: {runbook_id} is retired; point it at its replacement")
    return problems


# --------------------------------------------------------------------------- versions


def version_problems(loaded: LoadedRunbook, history: Iterable[tuple[str, bytes]],
                     committed: bytes | None, pinned: Iterable[Pinned]) -> list[str]:
    """Changed without a higher version, or one version with two contents."""
    runbook, problems = loaded.runbook, []
    current = runbook.version_key
    if committed is not None:
        before = _version_of(committed)
        if committed != loaded.data and before is not None and current <= before:
            problems.append(f"changed since the last commit but its version did not increase "
                            f"(committed {before}, now {runbook.version}): raise `version`")
    seen: dict[str, str] = {}  # the current version's other contents: where they were seen
    for revision, data in history:
        if _version_of(data) == current and data != loaded.data:
            seen.setdefault(revision, f"commit {revision[:10]}")
    for pin in pinned:
        if pin.runbook_id != runbook.id:
            continue
        version = Version.parse(pin.version)
        if version == current and pin.sha256 != loaded.sha256:
            seen.setdefault(pin.sha256, f"a snapshot pinned in the database ({pin.sha256[:12]})")
        elif version > current:
            problems.append(f"version {runbook.version} is lower than {pin.version}, which is "
                            "pinned in the database: versions only go up")
    if seen:
        problems.append(f"version {runbook.version} appears with different content in "
                        f"{', '.join(sorted(set(seen.values())))}: raise `version`")
    return problems


def _version_of(data: bytes) -> Version | None:
    try:
        return parse(data, "history").runbook.version_key
    except ConfigError:
        return None


# --------------------------------------------------------------------------- all of it


def check(library: Library, *, policy: Policy | None, history: History | None,
          pinned: Sequence[Pinned] = ()) -> list[Finding]:
    findings: list[Finding] = []
    for runbook_id, result in library.load_all():
        if isinstance(result, ConfigError):
            findings += [Finding(runbook_id, line) for line in str(result).splitlines()]
            continue
        problems = trial_render(result.runbook, policy)
        if policy is not None:
            problems += policy_problems(result.runbook, policy)
        path = str(library.path(runbook_id))
        problems += version_problems(
            result,
            history.revisions(path) if history is not None else [],
            history.committed(path) if history is not None else None,
            pinned,
        )
        findings += [Finding(runbook_id, p) for p in problems]
    if policy is not None:
        findings += [Finding("opsloop.yml", p) for p in routing_problems(library, policy)]
    return findings


def startup_problems(library: Library, policy: Policy, policy_path: str) -> list[str]:
    """What stops opsloop at start: an invalid runbook, or a name the policy does not define."""
    problems: list[str] = []
    for runbook_id, result in library.load_all():
        if isinstance(result, ConfigError):
            problems += str(result).splitlines()
        else:
            path = library.path(runbook_id)
            problems += [f"{path}: {p}" for p in policy_problems(result.runbook, policy)]
    problems += [f"{policy_path}: {p}" for p in routing_problems(library, policy)]
    return problems
