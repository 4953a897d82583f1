"""Checking an evidence bundle: `opsloop audit verify --bundle OUT.zip [--public-key FILE]`.

The zip is hostile input like any other: members are read with size limits,
names are never used as paths, and every defect becomes a problem in the
report (never an exception). The checks are those the bundle's README gives
an auditor to run by hand: the checksums and their signature, each
checkpoint's signature, and every event's hash, link and personal-data
commitment, held against the checkpoint that covers the period.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsloop.compliance.checkpoints import MAX_FILE, parse
from opsloop.compliance.personal import ERASED, canonical_value, matches, resolve
from opsloop.compliance.signing import Verifier
from opsloop.compliance.verify import Anchor
from opsloop.errors import InvalidInput

MAX_MEMBERS = 200_000
MAX_MEMBER = 2 * 1024**3  # uncompressed bytes of one file
MAX_SMALL = 16 * 1024**2  # SHA256SUMS, manifest, keys
MAX_LINE = 64 * 1024**2  # one event of the chain
CHUNK = 1024**2
FIELDS = ("seq", "at", "actor", "action", "subject", "before", "after", "prev_hash")
_SUM_LINE = re.compile(r"^([0-9a-f]{64})  (\S.*)$")


@dataclass
class Report:
    events: int = 0
    key_id: str | None = None
    cover: Anchor | None = None
    anchors: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Bundle:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if len(infos) > MAX_MEMBERS:
            raise InvalidInput(f"the bundle has {len(infos)} files; at most {MAX_MEMBERS}")
        prefix = "evidence/" if infos and all(i.filename.startswith("evidence/") for i in infos) else ""
        self.members = {i.filename.removeprefix(prefix): i for i in infos}

    def chunks(self, name: str, limit: int = MAX_MEMBER) -> Iterator[bytes]:
        info = self.members[name]
        if info.file_size > limit:
            raise ValueError(f"{name} is larger than {limit} bytes")
        read = 0
        with self.archive.open(info) as handle:
            while chunk := handle.read(CHUNK):
                read += len(chunk)
                if read > limit:  # the header lied about the size
                    raise ValueError(f"{name} is larger than {limit} bytes")
                yield chunk

    def read(self, name: str, limit: int = MAX_SMALL) -> bytes:
        return b"".join(self.chunks(name, limit))

    def lines(self, name: str) -> Iterator[bytes]:
        rest = b""
        for chunk in self.chunks(name):
            rest += chunk
            *complete, rest = rest.split(b"\n")
            yield from complete
            if len(rest) > MAX_LINE:
                raise ValueError(f"{name} has a line longer than {MAX_LINE} bytes")
        if rest:
            yield rest


def check(path: Path, keys: list[Verifier]) -> Report:
    report = Report()
    try:
        with zipfile.ZipFile(path) as archive:
            bundle = _Bundle(archive)
            _check(bundle, keys, report)
    except (zipfile.BadZipFile, OSError) as error:
        raise InvalidInput(f"{path}: not a readable zip ({error})") from None
    return report


def _check(bundle: _Bundle, keys: list[Verifier], report: Report) -> None:
    sums = _checksums(bundle, report)
    key = _key(bundle, keys, report)
    verifying = keys or ([key] if key else [])
    if key is not None and "SHA256SUMS.sig" in bundle.members and sums is not None:
        try:
            if not key.verify(bundle.read("SHA256SUMS"), bundle.read("SHA256SUMS.sig", 1024)):
                report.problems.append("SHA256SUMS.sig: the checksums are not signed by the bundle's key")
        except ValueError as error:
            report.problems.append(f"SHA256SUMS.sig: {error}")
    elif "SHA256SUMS.sig" not in bundle.members:
        report.notes.append("the checksums are not signed (no signing key was configured)")
    anchors = []
    for name in sorted(n for n in bundle.members if n.startswith("checkpoints/") and n.endswith(".json")):
        try:
            anchors.append(parse(bundle.read(name, MAX_FILE), verifying, name))
        except ValueError as error:
            report.problems.append(f"{name}: {error}")
    report.anchors = len(anchors)
    hashes, period_last = _chain(bundle, report)
    _cover(report, anchors, hashes, period_last)


def _checksums(bundle: _Bundle, report: Report) -> dict[str, str] | None:
    if "SHA256SUMS" not in bundle.members:
        report.problems.append("SHA256SUMS is missing: the bundle's files cannot be checked")
        return None
    listed: dict[str, str] = {}
    try:
        text = bundle.read("SHA256SUMS").decode("utf-8")
    except (ValueError, UnicodeDecodeError) as error:
        report.problems.append(f"SHA256SUMS cannot be read: {error}")
        return None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _SUM_LINE.fullmatch(line)
        if match is None:
            report.problems.append(f"SHA256SUMS line {number} is not `<sha256>  <file>`")
            continue
        listed[match.group(2)] = match.group(1)
    for name, expected in sorted(listed.items()):
        if name not in bundle.members:
            report.problems.append(f"{name} is listed in SHA256SUMS but missing")
            continue
        digest = hashlib.sha256()
        try:
            for chunk in bundle.chunks(name):
                digest.update(chunk)
        except (ValueError, zipfile.BadZipFile) as error:
            report.problems.append(f"{name} cannot be read: {error}")
            continue
        if digest.hexdigest() != expected:
            report.problems.append(f"{name} was changed: its SHA-256 is not the one in SHA256SUMS")
    for name in sorted(set(bundle.members) - set(listed) - {"SHA256SUMS", "SHA256SUMS.sig"}):
        report.problems.append(f"{name} is not listed in SHA256SUMS (added after the bundle was made)")
    return listed


def _key(bundle: _Bundle, keys: list[Verifier], report: Report) -> Verifier | None:
    if "public-key.pem" not in bundle.members:
        report.notes.append("the bundle carries no public key")
        return keys[0] if keys else None
    try:
        bundled = Verifier.from_pem(bundle.read("public-key.pem"), source="public-key.pem")
    except (InvalidInput, ValueError) as error:
        report.problems.append(str(error))
        return None
    report.key_id = bundled.key_id
    if keys and bundled.key_id not in {k.key_id for k in keys}:
        report.problems.append(f"public-key.pem is key {bundled.key_id[:16]}…, not the key you gave: the "
                               "bundle was not made with it")
    elif not keys:
        report.notes.append(f"checked with the bundle's own key {bundled.key_id[:16]}…; give the key you "
                            "were handed separately (--public-key) to prove whose it is")
    return bundled


def _chain(bundle: _Bundle, report: Report) -> tuple[dict[int, str], int | None]:
    hashes: dict[int, str] = {}
    previous: tuple[int, str | None] | None = None
    period_last: int | None = None
    for name in ("chain.jsonl", "chain-after.jsonl"):
        if name not in bundle.members:
            if name == "chain.jsonl":
                report.problems.append("chain.jsonl is missing")
            continue
        try:
            for number, raw in enumerate(bundle.lines(name), start=1):
                if not raw.strip():
                    continue
                previous = _event(raw, f"{name} line {number}", previous, hashes, report)
                if name == "chain.jsonl" and previous is not None:
                    period_last = previous[0]
                    report.events += 1
        except (ValueError, zipfile.BadZipFile) as error:
            report.problems.append(f"{name} cannot be read: {error}")
    return hashes, period_last


def _event(raw: bytes, where: str, previous: tuple[int, str | None] | None, hashes: dict[int, str],
           report: Report) -> tuple[int, str | None] | None:
    try:
        event = json.loads(raw.decode("utf-8"))
        seq = event["seq"]
        if not isinstance(seq, int):
            raise TypeError("seq")
    except (ValueError, KeyError, TypeError, RecursionError):
        report.problems.append(f"{where}: not an audit event")
        return previous
    if previous is not None and seq != previous[0] + 1:
        report.problems.append(f"event {seq}: events {previous[0] + 1}..{seq - 1} are missing before it")
    if "unreadable" in event:
        report.problems.append(f"event {seq}: unreadable in the database: {event['unreadable']}")
        return seq, None
    try:
        body: dict[str, Any] = {key: event[key] for key in FIELDS}
        if event.get("personal"):
            body["personal"] = event["personal"]
        digest = hashlib.sha256(canonical_value(body).encode()).hexdigest()
    except (KeyError, TypeError, ValueError):
        report.problems.append(f"{where}: event {seq} lacks a field of the chain")
        return seq, None
    if digest != event.get("hash"):
        report.problems.append(f"event {seq}: its content does not match its hash")
    if previous is not None and previous[1] is not None and body["prev_hash"] != previous[1]:
        report.problems.append(f"event {seq}: does not link to event {previous[0]}")
    sealed = event.get("personal_data") or {}
    for pointer in event.get("personal") or []:
        data: Any = sealed.get(pointer) if isinstance(sealed, dict) else None
        if data == ERASED:
            continue
        try:
            commitment = resolve({"before": body["before"], "after": body["after"]}, pointer)
            opened = matches(str(commitment), str(data["salt"]), canonical_value(data["value"]))
        except (LookupError, TypeError, ValueError):
            opened = False
        if not opened:
            report.problems.append(f"event {seq}: the personal data at {pointer} does not open its "
                                   "commitment")
    hash_ = str(event.get("hash"))
    hashes[seq] = hash_
    return seq, hash_


def _cover(report: Report, anchors: list[Anchor], hashes: dict[int, str],
           period_last: int | None) -> None:
    for anchor in anchors:
        if anchor.seq in hashes and hashes[anchor.seq] != anchor.hash:
            report.problems.append(f"{anchor.source}: the chain has another hash at event {anchor.seq}: "
                                   "it was rewritten after the checkpoint was signed")
    if period_last is None:
        return
    covering = [a for a in anchors if a.seq >= period_last and hashes.get(a.seq) == a.hash]
    if covering:
        report.cover = min(covering, key=lambda a: a.seq)
    else:
        report.notes.append("no signed checkpoint covers the period's last event: the chain is only "
                            "self-consistent")
