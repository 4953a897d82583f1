"""`opsloop runbooks check|list|show|diff|rollout`: runbooks from the shell and in CI.

Earlier versions come from git history (`git show REV:path`) and from the
snapshots pinned in the database; either may be missing (not a git checkout,
no database yet), which is said and skipped, never guessed.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from sqlalchemy.engine import make_url
from sqlmodel import Session, col, select

from bot.settings import Settings
from opsloop.db import Database
from opsloop.errors import ConfigError, NotFound, UsageError
from opsloop.policy import Policy
from opsloop.policy_loader import load_policy
from opsloop.rollouts.report import CSV_COLUMNS, of_run
from opsloop.runbooks.check import Pinned, check
from opsloop.runbooks.loader import Library, parse
from opsloop.runbooks.models import RunbookSnapshot

OK, CHECK_FAILED, BAD_INPUT = 0, 1, 2
T = TypeVar("T")
MAX_REVISIONS = 500


class GitHistory:
    """A runbook file's committed contents, read with the git command line."""

    def __init__(self, top: Path) -> None:
        self.top = top

    @classmethod
    def find(cls, directory: Path) -> GitHistory | None:
        top = _git(directory, "rev-parse", "--show-toplevel")
        return None if top is None else cls(Path(top.decode().strip()))

    def _relative(self, path: str) -> str:
        return Path(path).resolve().relative_to(self.top.resolve()).as_posix()

    def committed(self, path: str) -> bytes | None:
        return _git(self.top, "show", f"HEAD:{self._relative(path)}")

    def revisions(self, path: str) -> Sequence[tuple[str, bytes]]:
        relative = self._relative(path)
        log = _git(self.top, "log", f"--max-count={MAX_REVISIONS}", "--format=%H", "--", relative)
        out = []
        for revision in (log or b"").decode().split():
            data = _git(self.top, "show", f"{revision}:{relative}")
            if data is not None:  # None: the commit deleted the file
                out.append((revision, data))
        return out


def _git(where: Path, *args: str) -> bytes | None:
    try:
        # fixed argv, no shell: git is looked up on PATH like any developer tool
        done = subprocess.run(["git", "-C", str(where), *args],  # noqa: S603, S607
                              capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def pinned_snapshots(settings: Settings, say: Callable[[str], None]) -> list[RunbookSnapshot] | None:
    """The snapshots pinned in the database, or None (said why) when there is no usable database."""
    return from_database(settings, say, "pinned snapshots", lambda session: list(
        session.exec(select(RunbookSnapshot).order_by(col(RunbookSnapshot.id)))))


def from_database(settings: Settings, say: Callable[[str], None], what: str,
                  read: Callable[[Session], T]) -> T | None:
    """`read` in a transaction, or None (said why) when there is no usable database: a check
    compares what it can and says what it could not."""
    url = make_url(settings.database_url)
    if url.drivername.startswith("sqlite") and url.database and not Path(url.database).exists():
        say(f"note: no database at {url.database}; {what} not compared")
        return None
    db = Database.from_url(settings.database_url)
    try:
        with db.transaction() as session:
            return read(session)
    except Exception as error:  # unreachable, or not migrated yet
        say(f"note: {what} not compared (database: {type(error).__name__})")
        return None
    finally:
        db.dispose()


def register(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:  # type: ignore[type-arg]
    runbooks = sub.add_parser("runbooks", help="validate, list, show and compare runbooks")
    rb_sub = runbooks.add_subparsers(dest="runbooks_command", required=True, parser_class=parser_class)
    check_p = rb_sub.add_parser("check", help="validate every runbook; exit 1 when one fails")
    check_p.set_defaults(run=cmd_check)
    rb_sub.add_parser("list", help="id, version, status and owners").set_defaults(run=cmd_list)
    show = rb_sub.add_parser("show", help="print a runbook (an older version from git or snapshots)")
    show.add_argument("id")
    show.add_argument("--version", dest="version")
    show.set_defaults(run=cmd_show)
    diff = rb_sub.add_parser("diff", help="unified diff between two versions of a runbook")
    diff.add_argument("id")
    diff.add_argument("v1")
    diff.add_argument("v2")
    diff.set_defaults(run=cmd_diff)
    rollout = rb_sub.add_parser("rollout", help="every tenant's outcome of a run's rollout (foreach step)")
    rollout.add_argument("run", help="the run id (shown under the progress message) or a work item (INC-3)")
    rollout.add_argument("--csv", action="store_true", help="CSV with a header row, for a spreadsheet")
    rollout.set_defaults(run=cmd_rollout)


def _library(settings: Settings) -> Library:
    if not settings.runbooks_dir.is_dir():
        raise UsageError(f"{settings.runbooks_dir}: no such runbooks directory (OPSLOOP_RUNBOOKS_DIR)")
    return Library(settings.runbooks_dir)


def _policy(settings: Settings) -> Policy | None:
    return load_policy(settings.config) if settings.config.exists() else None


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    library = _library(settings)
    policy = _policy(settings)
    if policy is None:
        print(f"note: no policy file at {settings.config}; channels, roles and hosts not checked")
    history = GitHistory.find(library.directory)
    if history is None:
        print(f"note: {library.directory} is not in a git checkout; committed versions not compared")
    snapshots = pinned_snapshots(settings, print) or []
    findings = check(library, policy=policy, history=history,
                     pinned=[Pinned(s.runbook_id, s.version, s.sha256) for s in snapshots])
    return verdict([(f.runbook, f.problem) for f in findings], len(library.ids()), "runbooks")


def verdict(problems: Sequence[tuple[str, str]], count: int, noun: str) -> int:
    """Print each (file id, problem) and the count of files checked; the exit status (shared with
    `opsloop playbooks check`)."""
    for name, problem in problems:
        print(f"FAIL {name}: {problem}", file=sys.stderr)
    if problems:
        print(f"{len({name for name, _ in problems})} of {count} {noun} failed the check", file=sys.stderr)
        return CHECK_FAILED
    print(f"{count} {noun} checked: all valid")
    return OK


class Listed(Protocol):
    """What `list` prints of a runbook or a playbook."""

    @property
    def id(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def owners(self) -> Sequence[str]: ...

    @property
    def title(self) -> str: ...


def listing(found: Iterable[tuple[str, Listed | ConfigError]]) -> int:
    """One line per file: id, version, status, owners, title (or INVALID and why)."""
    status = OK
    for name, item in found:
        if isinstance(item, ConfigError):
            print(f"{name}\tINVALID\t-\t{str(item).splitlines()[0]}")
            status = CHECK_FAILED
            continue
        print(f"{item.id}\t{item.version}\t{item.status}\t{','.join(item.owners)}\t{item.title}")
    return status


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    return listing((rid, r if isinstance(r, ConfigError) else r.runbook)
                   for rid, r in _library(settings).load_all())


def _versions(runbook_id: str, settings: Settings) -> dict[str, tuple[str, bytes]]:
    """Every known version of a runbook: version -> (where from, bytes); the file wins, then
    pinned snapshots, then the newest commit."""
    library = _library(settings)
    found: dict[str, tuple[str, bytes]] = {}
    path = library.path(runbook_id)
    if path.is_file():
        loaded = library.load_path(path)
        found[loaded.runbook.version] = (str(path), loaded.data)
    for snapshot in pinned_snapshots(settings, lambda _: None) or []:
        if snapshot.runbook_id == runbook_id:
            found.setdefault(snapshot.version, (f"snapshot {snapshot.sha256[:12]}",
                                                snapshot.content.encode("utf-8")))
    history = GitHistory.find(library.directory)
    for revision, data in history.revisions(str(path)) if history is not None else []:
        try:
            version = parse(data, f"git {revision[:10]}").runbook.version
        except ConfigError:
            continue
        found.setdefault(version, (f"git {revision[:10]}", data))
    if not found:
        raise UsageError(f"no runbook {runbook_id!r} (not in {library.directory}, git or the database)")
    return found


def _pick(runbook_id: str, version: str, found: dict[str, tuple[str, bytes]]) -> tuple[str, bytes]:
    if version not in found:
        raise UsageError(f"{runbook_id} has no version {version} (known: {', '.join(sorted(found))})")
    return found[version]


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    if args.version is None:
        data = _library(settings).load(args.id).data
    else:
        data = _pick(args.id, args.version, _versions(args.id, settings))[1]
    sys.stdout.write(data.decode("utf-8"))
    return OK


def cmd_diff(args: argparse.Namespace, settings: Settings) -> int:
    found = _versions(args.id, settings)
    (where1, one), (where2, two) = _pick(args.id, args.v1, found), _pick(args.id, args.v2, found)
    sys.stdout.writelines(difflib.unified_diff(
        one.decode("utf-8").splitlines(keepends=True), two.decode("utf-8").splitlines(keepends=True),
        fromfile=f"{args.id} {args.v1} ({where1})", tofile=f"{args.id} {args.v2} ({where2})"))
    return OK


def cmd_rollout(args: argparse.Namespace, settings: Settings) -> int:
    """Each tenant of the run's rollout(s): CSV (`--csv`) or one tab-separated line each."""
    db = Database.from_url(settings.database_url)
    try:
        with db.transaction() as session:
            found = of_run(session, args.run)
    except NotFound as error:
        raise UsageError(str(error)) from None
    finally:
        db.dispose()
    if args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=["step", *CSV_COLUMNS], lineterminator="\n")
        writer.writeheader()
        for rollout, rows in found:
            writer.writerows({"step": rollout.step_id, **row} for row in rows)
        return OK
    for rollout, rows in found:
        print(f"rollout {rollout.id} · step {rollout.step_id} · {rollout.state} · "
              f"{rollout.targets} tenant(s)")
        for row in rows:
            print("\t".join(str(row[k] if row[k] is not None else "-")
                            for k in ("tenant", "wave_name", "state", "status", "error")))
    return OK
