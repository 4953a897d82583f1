"""A rollout's requests: each tenant's rendered from the step's template when its wave starts (stored,
secrets as markers), bound for a wave's approval (one SHA-256 over the wave's exact requests), rendered
for Roll back when it reaches the tenant, and turned into the executor's `Call`.

`RunView` is what rendering needs of the rollout's run (the pinned runbook, its step rows, the
template context), loaded once in one session.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from opsloop.models import WorkItem
from opsloop.remediation.http import Call
from opsloop.rollouts import models as M
from opsloop.rollouts.models import Rollout, RolloutTarget
from opsloop.rollouts.targets import Tenant, tenants
from opsloop.runbooks.engine import Engine
from opsloop.runbooks.models import RunbookRun, RunbookStepRun
from opsloop.runbooks.pinning import runbook_of, snapshot_of
from opsloop.runbooks.render import Context, RenderError, render_request
from opsloop.runbooks.schema import HttpRequest, HttpStep, Runbook

RENDER_CHUNK = 500  # targets rendered and written at a time when a wave starts


@dataclass(frozen=True)
class RunView:
    """A rollout's run with what rendering its requests needs, loaded in one session."""

    session: Session
    run: RunbookRun
    runbook: Runbook
    sha256: str
    item: WorkItem
    step: HttpStep
    rows: dict[str, RunbookStepRun]
    context: Context
    now: datetime

    def tenants(self, ids: list[str]) -> dict[str, Tenant]:
        return tenants(self.session, ids)


def view_of(session: Session, rollout: Rollout, engine: Engine, now: datetime) -> RunView:
    run = session.get(RunbookRun, rollout.run_id)
    assert run is not None
    snapshot = snapshot_of(session, run)
    runbook = runbook_of(snapshot)
    item = session.get(WorkItem, run.work_item_id)
    assert item is not None
    rows = engine.steps(session, run)
    step = runbook.step(rollout.step_id)
    assert isinstance(step, HttpStep)
    context = engine.context(runbook, run, rows, item, engine.tenants(session, item))
    return RunView(session, run, runbook, snapshot.sha256, item, step, {r.step_id: r for r in rows}, context,
                   now)


def render(request: HttpRequest, context: Context, where: str) -> dict[str, Any]:
    """A request as it will be sent, secrets as markers (safe to show, store and hash)."""
    return {
        "method": request.method,
        "url": render_request(request.url, context, where=f"{where}.url"),
        "headers": render_request(dict(request.headers), context, where=f"{where}.headers"),
        "json": render_request(request.json_body, context, where=f"{where}.json", typed=True),
    }


def wave_binding(sha256: str, step_id: str, wave: int, requests: list[tuple[str, dict[str, Any]]]) -> str:
    text = json.dumps([sha256, step_id, wave, requests], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def render_wave(view: RunView, rollout: Rollout, *, keep: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """Render (and store) the request of each target of the current wave still waiting; one that
    cannot be rendered fails that tenant. Returns (tenant, request) in wave order when `keep`.

    A wave may hold most of a 10,000-tenant fleet: its targets are read, rendered, written and
    let go of RENDER_CHUNK at a time (never all in the session at once)."""
    session = view.session
    out: list[tuple[str, dict[str, Any]]] = []
    after = -1
    while True:
        targets = list(
            session.exec(
                select(RolloutTarget)
                .where(
                    RolloutTarget.rollout_id == rollout.id,
                    RolloutTarget.wave == rollout.wave,
                    RolloutTarget.state == M.WAITING,
                    col(RolloutTarget.position) > after,
                )
                .order_by(col(RolloutTarget.position))
                .limit(RENDER_CHUNK)
            )
        )
        if not targets:
            return out
        after = targets[-1].position
        known = view.tenants([t.tenant_id for t in targets])
        for target in targets:
            tenant = known.get(target.tenant_id)
            try:
                if tenant is None:
                    raise RenderError(f"tenant {target.tenant_id} is no longer in the account catalog")
                request = render(
                    view.step.request,
                    replace(view.context, tenant=tenant.context()),
                    f"steps.{view.step.id}.request",
                )
            except RenderError as error:
                target.state, target.error = M.FAILED, f"cannot render: {error}"
                target.finished_at = view.now
                session.add(target)
                continue
            target.request = request
            session.add(target)
            if keep:
                out.append((target.tenant_id, request))
        session.flush()
        for target in targets:  # written: nothing here reads them again in this transaction
            session.expunge(target)


def rollback_request(view: RunView, request: HttpRequest, target: RolloutTarget) -> dict[str, object]:
    """A tenant's rollback request, rendered when Roll back reaches it."""
    known = view.tenants([target.tenant_id])
    tenant = known.get(target.tenant_id)
    if tenant is None:
        raise RenderError(f"tenant {target.tenant_id} is no longer in the account catalog")
    return render(request, replace(view.context, tenant=tenant.context()), f"steps.{view.step.id}.rollback")


def call_of(step: HttpStep, request: dict[str, object]) -> Call:
    """A tenant's stored (or rollback) request as the executor's call, with the step's expectations."""
    return Call(
        method=str(request["method"]),
        url=str(request["url"]),
        headers=dict(request.get("headers") or {}),  # type: ignore[call-overload]
        json_body=request.get("json"),
        expect=tuple(step.expect.status),
        timeout=step.timeout.total_seconds(),
        attempts=step.retry.attempts,
        on_status=tuple(step.retry.on_status),
    )
