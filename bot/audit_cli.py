"""`opsloop audit ...` and `opsloop privacy erase`: compliance evidence from the shell.

    opsloop audit verify [--checkpoints DIR] [--public-key FILE ...] | --bundle OUT.zip
    opsloop audit export [--since DATE] [--until DATE]
    opsloop audit keygen DIR
    opsloop audit checkpoint [--to DIR]
    opsloop audit evidence --since DATE --until DATE OUT.zip
    opsloop privacy erase --contact EMAIL | --tenant ID

Exit status as everywhere: 0 success, 1 a check failed (or an erasure left
something behind), 2 bad usage or bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bot.bootstrap import Services, bootstrap
from bot.settings import Settings
from opsloop.compliance import bundle, bundle_check, checkpoints, erasure, export, signing
from opsloop.compliance.verify import Verdict, verify
from opsloop.db import Database
from opsloop.errors import ConfigError, UsageError

OK, CHECK_FAILED, BAD_INPUT = 0, 1, 2
CLI_ACTOR = "system:cli"  # the command line, as in bot.cli
SHOWN = 20  # problems printed before "... and N more"


def register(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:  # type: ignore[type-arg]
    audit = sub.add_parser("audit", help="the hash-chained audit log and its evidence")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, parser_class=parser_class)
    check = audit_sub.add_parser("verify", help="check every link of the chain (exit 1 on any defect)")
    check.add_argument("--checkpoints", type=Path, metavar="DIR",
                       help="hold the chain against the signed checkpoint copies in DIR")
    check.add_argument("--public-key", type=Path, action="append", metavar="FILE",
                       help="the public key that signed them (repeat for a rotated key)")
    check.add_argument("--bundle", type=Path, metavar="OUT.zip", help="check an evidence bundle instead")
    check.set_defaults(run=cmd_verify)
    out = audit_sub.add_parser("export", help="write the chain as JSON Lines")
    out.add_argument("--since", type=when, help="from this date or time (UTC)")
    out.add_argument("--until", type=when, help="up to the end of this date, or this time (UTC)")
    out.set_defaults(run=cmd_export)
    keygen = audit_sub.add_parser("keygen", help="write a new Ed25519 signing key pair into DIR")
    keygen.add_argument("directory", type=Path, metavar="DIR")
    keygen.set_defaults(run=cmd_keygen)
    take = audit_sub.add_parser("checkpoint", help="sign the chain's head now")
    take.add_argument("--to", type=Path, metavar="DIR",
                      help="write the copy into DIR (default: audit.checkpoint_to)")
    take.set_defaults(run=cmd_checkpoint)
    evidence = audit_sub.add_parser("evidence", help="an evidence bundle for an auditor")
    evidence.add_argument("--since", type=when, required=True, help="first date (UTC), e.g. 2026-01-01")
    evidence.add_argument("--until", type=when, required=True,
                          help="last date (UTC, inclusive), e.g. 2026-03-31")
    evidence.add_argument("out", type=Path, metavar="OUT.zip")
    evidence.set_defaults(run=cmd_evidence)

    privacy = sub.add_parser("privacy", help="personal data")
    privacy_sub = privacy.add_subparsers(dest="privacy_command", required=True, parser_class=parser_class)
    erase = privacy_sub.add_parser("erase", help="erase a person from every table (GDPR)")
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--contact", metavar="EMAIL", help="a customer contact's email")
    who.add_argument("--tenant", metavar="ID", help="every contact an account has held")
    erase.set_defaults(run=cmd_erase)


@dataclass(frozen=True)
class Moment:
    """A parsed --since / --until: a date (a whole day, UTC) or a time."""

    at: datetime
    whole_day: bool

    @property
    def end(self) -> datetime:
        """As an --until: the last day is included; a time is the end itself."""
        return self.at + timedelta(days=1) if self.whole_day else self.at


def when(text: str) -> Moment:
    try:
        if "T" in text or " " in text.strip():
            parsed = datetime.fromisoformat(text)
            return Moment(parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC),
                          whole_day=False)
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None
    return Moment(datetime(day.year, day.month, day.day, tzinfo=UTC), whole_day=True)


def _database(settings: Settings) -> Database:
    db = Database.from_url(settings.database_url)
    if not db.migrations_current():
        db.dispose()
        raise ConfigError("the database schema is not current: run `opsloop db upgrade`")
    return db


def _services(settings: Settings) -> Services:
    return bootstrap(settings, load_accounts=False)  # never re-import contacts an erasure is removing


def _keys(paths: Sequence[Path] | None) -> list[signing.Verifier]:
    return [signing.Verifier.load(path) for path in paths or ()]


# --------------------------------------------------------------------------- verify


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    keys = _keys(args.public_key)
    if args.bundle is not None:
        if args.checkpoints is not None:
            raise UsageError("--bundle checks a bundle; --checkpoints the database: use one")
        return _verify_bundle(args.bundle, keys)
    if args.checkpoints is not None and not keys:
        raise UsageError("--checkpoints needs --public-key FILE: the key that signed them")
    signer = signing.Signer.load(settings.audit_signing_key) if settings.audit_signing_key else None
    db = _database(settings)
    try:
        with db.snapshot() as session:
            if args.checkpoints is not None:
                reading: checkpoints.Reading | None = checkpoints.read_directory(args.checkpoints, keys)
            elif keys or signer is not None:
                reading = checkpoints.read_stored(session, keys or [signer.public] if signer else keys)
            else:
                reading = None
            verdict = verify(session, anchors=reading.anchors if reading else ())
    finally:
        db.dispose()
    problems = (reading.problems if reading else []) + [p.text for p in verdict.problems]
    if problems:
        print(f"audit chain broken: {problems[0]}", file=sys.stderr)
        _more(problems[1:], verdict.more_problems)
        return CHECK_FAILED
    print(_intact(verdict, reading, args.checkpoints))
    return OK


def _intact(verdict: Verdict, reading: checkpoints.Reading | None, directory: Path | None) -> str:
    events = f"{verdict.checked} event{'s' * (verdict.checked != 1)}"
    if reading is None:
        return (f"audit chain self-consistent: {events}. No signing key is configured, so this shows only "
                "that the chain agrees with itself: a cut tail or a rewritten chain would not show. Set "
                "OPSLOOP_AUDIT_SIGNING_KEY (see `opsloop audit keygen`) or pass --checkpoints DIR "
                "--public-key FILE.")
    newest = verdict.newest_anchor
    if newest is None:
        where = str(directory) if directory else "the database"
        return (f"audit chain self-consistent: {events}; no signed checkpoint in {where} to hold it against "
                "yet (`opsloop audit checkpoint` takes one)")
    line = (f"audit chain intact: {events}, consistent with {verdict.anchors} signed checkpoint"
            f"{'s' * (verdict.anchors != 1)} (the newest: event {newest.seq}, signed "
            f"{newest.at:%Y-%m-%d %H:%M:%S}Z)")
    if directory is None:
        line += ("; these are the copies kept in the database: --checkpoints DIR checks the copies kept "
                 "outside it, which also show a checkpoint deleted from it")
    return line


def _more(problems: list[str], uncounted: int = 0) -> None:
    for problem in problems[:SHOWN]:
        print(f"  also: {problem}", file=sys.stderr)
    hidden = max(0, len(problems) - SHOWN) + uncounted
    if hidden:
        print(f"  ... and {hidden} more", file=sys.stderr)


def _verify_bundle(path: Path, keys: list[signing.Verifier]) -> int:
    report = bundle_check.check(path, keys)
    if report.problems:
        print(f"evidence bundle broken: {report.problems[0]}", file=sys.stderr)
        _more(report.problems[1:])
        return CHECK_FAILED
    cover = report.cover
    covered = (f"covered by the checkpoint of event {cover.seq} signed {cover.at:%Y-%m-%d %H:%M:%S}Z"
               if cover else "not covered by a signed checkpoint")
    print(f"evidence bundle intact: {report.events} events, {report.anchors} checkpoints, {covered}; "
          f"key {report.key_id or 'none'}")
    for note in report.notes:
        print(f"note: {note}")
    return OK


# --------------------------------------------------------------------------- the rest


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    db = _database(settings)
    try:
        with db.snapshot() as session:
            since = args.since.at if args.since else None
            until = args.until.end if args.until else None
            for line in export.lines(session, since=since, until=until):
                sys.stdout.write(line + "\n")
    finally:
        db.dispose()
    return OK


def cmd_keygen(args: argparse.Namespace, settings: Settings) -> int:
    private, public = signing.generate(args.directory)
    key = signing.Verifier.load(public)
    print(f"wrote {private} (the private key, readable by you only) and {public}")
    print(f"key id {key.key_id}")
    print(f"sign with it:   export OPSLOOP_AUDIT_SIGNING_KEY={private.resolve()}")
    print("keep the private key off the database host and its backups; give the public key and the key id "
          "to your auditors by another channel")
    return OK


def cmd_checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    services = _services(settings)
    destination = services.checkpoints.destination
    if args.to is None and destination is None:
        raise UsageError("nowhere to keep the copy: give --to DIR or set audit.checkpoint_to in the policy")
    to_file = args.to or (Path(destination[1]) if destination and destination[0] == "file" else None)
    checkpoint = services.checkpoints.take(queue=to_file is None)
    said = (f"checkpoint of event {checkpoint.seq} (hash {checkpoint.hash[:16]}…) signed by key "
            f"{checkpoint.key_id[:16]}…")
    if to_file is not None:
        print(f"{said}: written to {checkpoints.write(to_file, checkpoint)}")
    else:
        print(f"{said}: queued for {destination[1] if destination else '?'}; the running bot delivers it")
    return OK


def cmd_evidence(args: argparse.Namespace, settings: Settings) -> int:
    services = _services(settings)
    since, until = args.since.at, args.until.end
    signer = services.checkpoints.signer
    if signer is not None:  # a checkpoint of the head now covers the whole period
        services.checkpoints.take(trigger=checkpoints.EVIDENCE)
    keys = [signer.public] if signer is not None else []
    with services.db.snapshot() as session:
        summary = bundle.build(session, since=since, until=until, out=args.out, signer=signer, keys=keys,
                               generated_at=services.clock.now())
    cover = summary.cover
    print(f"wrote {args.out}: {summary.events} audit events ({summary.first_seq}..{summary.last_seq}), "
          f"{summary.checkpoints} checkpoints, {summary.runs} runbook runs, "
          f"{summary.calls} remediation calls")
    if cover is None:
        print("note: no signed checkpoint covers the period: the bundle shows only a self-consistent chain "
              "(set OPSLOOP_AUDIT_SIGNING_KEY)")
    return OK


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    services = _services(settings)
    result = erasure.erase(services.db, services.clock, actor=CLI_ACTOR, contact=args.contact,
                           tenant=args.tenant, accounts_file=services.policy.accounts_path)
    who = args.contact or f"the contacts of account {args.tenant} ({result.contacts})"
    rows = ", ".join(f"{table} {n}" for table, n in sorted(result.rows.items())) or "none"
    print(f"erased {who}: {result.erased_values} sealed audit value(s); rows changed: {rows}; "
          f"{result.cancelled} undelivered message(s) cancelled; recorded as audit event {result.seq}")
    for place in result.remaining:
        print(f"still held, not erasable here: {place}", file=sys.stderr)
    for source in result.sources:
        print(f"still in a configured source: {source}", file=sys.stderr)
    return CHECK_FAILED if result.remaining or result.sources else OK
