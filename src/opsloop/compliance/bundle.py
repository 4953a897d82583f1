"""The evidence bundle: `opsloop audit evidence --since DATE --until DATE OUT.zip`.

One zip an auditor can check without opsloop (see `bundle_readme`):

    README.md               what is inside and how to verify it with standard tools
    manifest.json           the period, the events it spans, the covering checkpoint, the key id
    chain.jsonl             the audit events of the period, as `opsloop audit export` writes them
    chain-after.jsonl       the events after it, up to the checkpoint that covers it
    checkpoints/            each covering checkpoint: .json (as copied out), .statement (the signed
                            bytes) and .sig (the raw Ed25519 signature)
    public-key.pem          the key that signed them
    runbook-versions.json   the runbook versions runs used in the period, and runbooks/<id>-<v>.yaml
    runbook-runs.jsonl      those runs, step by step, with who approved each approval step
    remediation.jsonl       the remediation calls (http steps) of the period, with their approvers
    roles.jsonl             the roles and permissions in effect at each start in the period
    check_chain.py          re-checks hashes, links, personal-data commitments (Python 3, stdlib)
    SHA256SUMS              the SHA-256 of every file above; SHA256SUMS.sig signs it
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from opsloop.compliance import bundle_readme, export, reader
from opsloop.compliance.chain import sha256
from opsloop.compliance.checkpoints import stored
from opsloop.compliance.models import ConfigStart
from opsloop.compliance.signing import Signer, Verifier
from opsloop.compliance.verify import Anchor
from opsloop.errors import InvalidInput
from opsloop.models import WorkItem
from opsloop.remediation.models import RemediationCall
from opsloop.runbooks.models import RunbookRun, RunbookSnapshot, RunbookStepRun

Q = TypeVar("Q", bound="Select[*tuple[Any, ...]]")


@dataclass
class Summary:
    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    cover: Anchor | None = None  # the checkpoint that covers the period's last event
    checkpoints: int = 0
    runs: int = 0
    calls: int = 0
    files: list[str] = field(default_factory=list)


def build(session: Session, *, since: datetime, until: datetime, out: Path, signer: Signer | None,
          keys: list[Verifier], generated_at: datetime) -> Summary:
    """Write the bundle for events at or after `since` and before `until` (read from one snapshot)."""
    if until <= since:
        raise InvalidInput("--until must come after --since")
    summary = Summary()
    files: dict[str, bytes] = {}
    span = reader.seq_range(session, since=since, until=until)
    anchors = _checkpoints(session, keys, files, span)
    if span is not None:
        summary.first_seq, summary.last_seq = span
        summary.events = span[1] - span[0] + 1
        covering = [a for a in anchors if a.seq >= span[1]]
        summary.cover = min(covering, key=lambda a: (a.seq, a.at)) if covering else None
        files["chain.jsonl"] = _lines(export.seq_lines(session, *span))
        if summary.cover is not None and summary.cover.seq > span[1]:
            files["chain-after.jsonl"] = _lines(export.seq_lines(session, span[1] + 1, summary.cover.seq))
    else:
        files["chain.jsonl"] = b""
    summary.checkpoints = sum(1 for name in files if name.endswith(".statement"))
    key = signer.public if signer is not None else (keys[0] if keys else None)
    if key is not None:
        files["public-key.pem"] = key.pem
    summary.runs = _runbooks(session, since, until, files)
    summary.calls = _remediation(session, since, until, files)
    files["roles.jsonl"] = _lines(_roles(session, since, until))
    cover = summary.cover
    manifest = {"period": {"since": since.isoformat(), "until": until.isoformat()},
                "generated_at": generated_at.isoformat(), "events": summary.events,
                "first_seq": summary.first_seq, "last_seq": summary.last_seq,
                "covered_by": None if cover is None else {
                    "seq": cover.seq, "file": cover.source, "signed_at": cover.at.isoformat()},
                "key_id": None if key is None else key.key_id, "runbook_runs": summary.runs,
                "remediation_calls": summary.calls}
    files["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    files["README.md"] = bundle_readme.readme(manifest).encode()
    files["check_chain.py"] = bundle_readme.CHECK_CHAIN.encode()
    sums = "".join(f"{sha256(data)}  {name}\n" for name, data in sorted(files.items())).encode()
    files["SHA256SUMS"] = sums
    if signer is not None:
        files["SHA256SUMS.sig"] = signer.sign(sums)
    _write(out, files)
    summary.files = sorted(files)
    return summary


def _lines(rows: Iterable[str]) -> bytes:
    return "".join(f"{row}\n" for row in rows).encode()


def _write(out: Path, files: dict[str, bytes]) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            info = zipfile.ZipInfo(f"evidence/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("xb") as handle:  # never over an earlier bundle
            handle.write(buffer.getvalue())
    except FileExistsError:
        raise InvalidInput(f"{out} exists already; pick another name") from None
    except OSError as error:
        raise InvalidInput(f"{out}: cannot write: {error.strerror}") from None


# --------------------------------------------------------------------------- parts


def _checkpoints(session: Session, keys: list[Verifier], files: dict[str, bytes],
                 span: tuple[int, int] | None) -> list[Anchor]:
    """Stored checkpoints that verify with `keys` and bear on the span: from the last one before it
    up to the first one at or after its end. Each is written as .json, .statement and .sig."""
    if not keys or span is None:
        return []
    found = [(s.anchor, s.statement, s.signature) for s in stored(session, keys)[0]]  # unverifiable: left out
    before = [f for f in found if f[0].seq < span[0]]
    after = [f for f in found if f[0].seq >= span[1]]
    chosen = [f for f in found if span[0] <= f[0].seq < span[1]]
    chosen += before[-1:] + after[:1]
    anchors = []
    for anchor, signed, sig in sorted(chosen, key=lambda f: (f[0].seq, f[0].at)):
        name = f"checkpoints/checkpoint-{anchor.seq:012d}-{anchor.at:%Y%m%dT%H%M%S.%f}Z"
        document = {"statement": json.loads(signed), "signature": sig}
        files[f"{name}.json"] = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
        files[f"{name}.statement"] = signed
        files[f"{name}.sig"] = base64.b64decode(sig)
        anchors.append(Anchor(anchor.seq, anchor.hash, anchor.at, f"{name}.json"))
    return anchors


def _of_period(query: Q, made: type[RunbookRun | RemediationCall], since: datetime, until: datetime) -> Q:
    """`query` (of `made` and its run) with each run's work item, for the rows of `made` created in the
    period, oldest first."""
    return (query.join(WorkItem, col(WorkItem.id) == col(RunbookRun.work_item_id))
            .where(col(made.created_at) >= since, col(made.created_at) < until)
            .order_by(col(made.id)))


def _runbooks(session: Session, since: datetime, until: datetime, files: dict[str, bytes]) -> int:
    runs = session.exec(_of_period(
        select(RunbookRun, RunbookSnapshot, WorkItem)
        .join(RunbookSnapshot, col(RunbookSnapshot.id) == col(RunbookRun.snapshot_id)),
        RunbookRun, since, until)).all()
    versions: dict[str, dict[str, Any]] = {}
    lines = []
    for run, snapshot, item in runs:
        name = f"runbooks/{snapshot.runbook_id}-{snapshot.version}.yaml"
        if name not in files:
            files[name] = snapshot.content.encode()
        entry = versions.setdefault(snapshot.sha256, {
            "runbook": snapshot.runbook_id, "version": snapshot.version, "sha256": snapshot.sha256,
            "first_seen": snapshot.first_seen.isoformat(), "file": name, "runs": 0})
        entry["runs"] += 1
        steps = session.exec(select(RunbookStepRun).where(RunbookStepRun.run_id == run.id)
                             .order_by(col(RunbookStepRun.position))).all()
        lines.append(json.dumps({
            "run": run.id, "item": item.ref, "runbook": snapshot.runbook_id, "version": snapshot.version,
            "sha256": snapshot.sha256, "started_by": run.started_by, "state": run.state,
            "created_at": run.created_at.isoformat(), "finished_at": _iso(run.finished_at),
            "steps": [{"step": s.step_id, "state": s.state, "by": s.actor, "reason": s.reason,
                       "finished_at": _iso(s.finished_at),
                       "approvals": [{"by": a.get("by"), "at": a.get("at")} for a in s.approvals]}
                      for s in steps]}, sort_keys=True, ensure_ascii=False))
    listed = sorted(versions.values(), key=lambda v: (v["runbook"], v["version"]))
    files["runbook-versions.json"] = (json.dumps(listed, indent=2, sort_keys=True) + "\n").encode()
    files["runbook-runs.jsonl"] = _lines(lines)
    return len(lines)


def _remediation(session: Session, since: datetime, until: datetime, files: dict[str, bytes]) -> int:
    calls = session.exec(_of_period(
        select(RemediationCall, RunbookRun, WorkItem)
        .join(RunbookRun, col(RunbookRun.id) == col(RemediationCall.run_id)),
        RemediationCall, since, until)).all()
    lines = []
    for call, run, item in calls:
        gates = session.exec(select(RunbookStepRun).where(RunbookStepRun.run_id == run.id)).all()
        # an approval counts for a call when it was given for exactly this rendered request
        approvers = [{"gate": g.step_id, "by": a.get("by"), "at": a.get("at")}
                     for g in gates for a in g.approvals
                     if call.binding is not None
                     and (a.get("binding") or {}).get(call.step_id) == call.binding]
        lines.append(json.dumps({
            "call": call.id, "item": item.ref, "runbook": run.runbook_id, "step": call.step_id,
            "state": call.state, "request": call.request, "binding": call.binding, "status": call.status,
            "attempts": call.attempts, "error": call.error, "approved_by": approvers,
            "decided_by": call.decided_by, "created_at": call.created_at.isoformat(),
            "finished_at": _iso(call.finished_at)}, sort_keys=True, ensure_ascii=False))
    files["remediation.jsonl"] = _lines(lines)
    return len(lines)


def _roles(session: Session, since: datetime, until: datetime) -> Iterator[str]:
    """The roles in effect when the period began (the last start before it), then each start in it."""
    last_before = session.exec(select(ConfigStart).where(col(ConfigStart.at) < since)
                               .order_by(col(ConfigStart.id).desc()).limit(1)).first()
    during = session.exec(select(ConfigStart).where(col(ConfigStart.at) >= since, col(ConfigStart.at) < until)
                          .order_by(col(ConfigStart.id))).all()
    for start in ([last_before] if last_before else []) + list(during):
        yield json.dumps({"start": start.id, "at": start.at.isoformat(),
                          "policy_sha256": start.policy_sha256, "runbooks_sha256": start.runbooks_sha256,
                          "roles_sha256": start.roles_sha256, "roles": start.roles.get("roles", {}),
                          "permissions": start.roles.get("permissions", {}), "runbooks": start.runbooks},
                         sort_keys=True)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()

