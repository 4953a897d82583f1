"""`opsloop audit verify` against every way someone with database access could tamper with the chain.

Each case ends in exit 1 and a message naming what is wrong, never a
traceback; a cut tail and a rewrite need checkpoints signed with a key kept
out of the database to show, and do with them.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.cli import main
from opsloop.db import Database
from tests.bot.conftest import Run
from tests.core.compliance.chain import append, corrupt, cut_tail, restore_schema, rewrite_from
from tests.support import ROOT, FakeClock


@pytest.fixture
def cli(run_cli: Run, db_url: str) -> Iterator[Run]:
    yield run_cli
    restore_schema(db_url)  # some tests rewrite the chain's tables


@pytest.fixture
def keyed(cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A signing key (as `opsloop audit keygen` writes it) configured; returns (public key, copies dir)."""
    code, out, _ = cli("audit", "keygen", str(tmp_path / "keys"))
    assert code == 0 and "key id " in out
    monkeypatch.setenv("OPSLOOP_AUDIT_SIGNING_KEY", str(tmp_path / "keys" / "audit-signing-key.pem"))
    return tmp_path / "keys" / "audit-signing-key.pub.pem", tmp_path / "copies"


def sql(db: Database, *statements: str) -> None:
    with db.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


TAMPERING: dict[str, tuple[Callable[[Database], None], str]] = {
    "edit": (lambda db: sql(db, "UPDATE audit_events SET actor = 'U_EVIL' WHERE seq = 3"),
             "event 3 (thing.done INC-2) was altered: its content does not match its hash"),
    "invalid JSON": (lambda db: corrupt(db, "invalid JSON", 3),
                     "event 3 cannot be read: `after` is not valid JSON (Expecting value): "
                     "'{\"state\": \"b\", \"n\": '"),
    "bad date": (lambda db: corrupt(db, "bad date", 3),
                 "event 3 cannot be read: `at` is not a date: "),
    "non-UTF-8": (lambda db: corrupt(db, "non-UTF-8", 3),
                  "event 3 cannot be read: `actor` is not UTF-8 text (byte 0xff at 0)"),
    "delete middle": (lambda db: sql(db, "DELETE FROM audit_events WHERE seq = 3"),
                      "event 3 missing before event 4"),
    "reorder": (lambda db: sql(db, "UPDATE audit_events SET seq = 100 WHERE seq = 2",
                               "UPDATE audit_events SET seq = 2 WHERE seq = 3",
                               "UPDATE audit_events SET seq = 3 WHERE seq = 100"),
                "event 2 holds what was event 3: events were reordered\n"
                "  also: event 3 holds what was event 2: events were reordered\n"
                "  also: event 4 does not link to the event before it\n"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_each_tampering_of_a_row_fails_verify_naming_the_event(db: Database, clock: FakeClock, cli: Run,
                                                                case: str) -> None:
    append(db, clock, 5)
    assert cli("audit", "verify")[0] == 0
    tamper, message = TAMPERING[case]
    tamper(db)
    code, out, err = cli("audit", "verify")
    assert code == 1 and out == ""
    assert err.startswith(f"audit chain broken: {message}"), err


def test_deleting_the_tail_and_fixing_the_head_is_caught_by_a_checkpoint(
        db: Database, clock: FakeClock, cli: Run, keyed: tuple[Path, Path]) -> None:
    public, copies = keyed
    append(db, clock, 5)
    code, out, _ = cli("audit", "checkpoint", "--to", str(copies))
    assert code == 0 and out.startswith("checkpoint of event 5 (hash ")
    [copy] = copies.iterdir()
    cut_tail(db, 3)
    assert cli("audit", "verify")[0] == 1  # the copy kept in the database still contradicts it
    sql(db, "DELETE FROM audit_checkpoints")  # ... so the attacker removes that too
    code, out, err = cli("audit", "verify", "--checkpoints", str(copies), "--public-key", str(public))
    assert code == 1
    assert err.startswith(f"audit chain broken: checkpoint {copy.name} (signed ")
    assert "records event 5, but the chain ends at event 3: events were deleted from its tail" in err


def test_an_edit_with_every_later_hash_and_the_head_recomputed_is_caught_by_a_checkpoint(
        db: Database, clock: FakeClock, cli: Run, keyed: tuple[Path, Path]) -> None:
    public, copies = keyed
    append(db, clock, 5)
    assert cli("audit", "checkpoint", "--to", str(copies))[0] == 0
    rewrite_from(db, 2, {"state": "forged"})
    sql(db, "DELETE FROM audit_checkpoints")
    monkey_free = cli("audit", "verify")  # the database alone: consistent, and nothing to hold it against
    assert monkey_free[0] == 0 and "no signed checkpoint in the database" in monkey_free[1]
    code, _, err = cli("audit", "verify", "--checkpoints", str(copies), "--public-key", str(public))
    assert code == 1
    assert "records event 5 with hash" in err and "the chain was rewritten at or before event 5" in err


def test_verify_says_what_it_can_prove(db: Database, clock: FakeClock, cli: Run, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    append(db, clock, 3)
    code, out, _ = cli("audit", "verify")
    assert code == 0 and out.startswith("audit chain self-consistent: 3 events. No signing key is configured")
    code, _, err = cli("audit", "verify", "--checkpoints", str(tmp_path))
    assert code == 2 and "--checkpoints needs --public-key FILE" in err
    code, _, err = cli("audit", "verify", "--public-key", str(tmp_path / "absent.pem"))
    assert code == 2 and "absent.pem: cannot read" in err


def test_checkpoints_copied_out_make_verify_say_intact(db: Database, clock: FakeClock, cli: Run,
                                                       keyed: tuple[Path, Path]) -> None:
    public, copies = keyed
    append(db, clock, 3)
    assert cli("audit", "checkpoint", "--to", str(copies))[0] == 0
    append(db, clock, 2, start=3)
    code, out, _ = cli("audit", "verify", "--checkpoints", str(copies), "--public-key", str(public))
    assert code == 0
    assert out.startswith("audit chain intact: 5 events, consistent with 1 signed checkpoint (the newest: event 3")
    code, out, _ = cli("audit", "verify")  # the key is configured: the copies in the database are used
    assert code == 0 and "these are the copies kept in the database" in out


def test_a_database_that_is_not_migrated_is_refused_in_one_line(cli: Run, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    code, _, err = cli("audit", "verify")
    assert code == 2 and err == "opsloop: the database schema is not current: run `opsloop db upgrade`\n"


# --------------------------------------------------------------------------- the evidence bundle


def readme_commands(directory: Path) -> str:
    """The sh block of the bundle's README, as an auditor would copy it."""
    readme = (directory / "README.md").read_text()
    return readme.split("```sh\n", 1)[1].split("```", 1)[0]


def unpack(bundle: Path, into: Path) -> Path:
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(into)
    return into / "evidence"


def repack(directory: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, f"evidence/{path.relative_to(directory)}")
    return out


@pytest.fixture
def evidence(db: Database, clock: FakeClock, cli: Run, keyed: tuple[Path, Path], tmp_path: Path) -> Path:
    append(db, clock, 5)
    out = tmp_path / "evidence.zip"
    code, text_out, _ = cli("audit", "evidence", "--since", "2026-11-23", "--until", "2026-11-23", str(out))
    assert code == 0 and text_out.startswith(f"wrote {out}: 5 audit events (1..5), 1 checkpoints")
    return out


def test_an_evidence_bundle_verifies_with_opsloop_and_with_the_readme_s_standard_tools(
        evidence: Path, cli: Run, keyed: tuple[Path, Path], tmp_path: Path) -> None:
    code, out, _ = cli("audit", "verify", "--bundle", str(evidence), "--public-key", str(keyed[0]))
    assert code == 0 and out.startswith("evidence bundle intact: 5 events, 1 checkpoints, covered by the "
                                        "checkpoint of event 5 signed ")
    directory = unpack(evidence, tmp_path / "auditor")
    assert {p.name for p in directory.iterdir()} >= {
        "README.md", "chain.jsonl", "checkpoints", "public-key.pem", "runbook-versions.json", "runbook-runs.jsonl",
        "remediation.jsonl", "roles.jsonl", "manifest.json", "check_chain.py", "SHA256SUMS", "SHA256SUMS.sig"}
    if shutil.which("openssl") is None or shutil.which("sha256sum") is None:
        pytest.skip("openssl or sha256sum is not installed")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_commands(directory)], cwd=directory,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "chain.jsonl: OK" in done.stdout and done.stdout.count("Signature Verified Successfully") == 2
    assert "5 events checked: all hold" in done.stdout


def test_a_tampered_bundle_fails_every_way_it_is_checked(evidence: Path, cli: Run, keyed: tuple[Path, Path],
                                                        tmp_path: Path) -> None:
    directory = unpack(evidence, tmp_path / "attacker")
    chain = directory / "chain.jsonl"
    chain.write_text(chain.read_text().replace('"actor": "U2"', '"actor": "U_EVIL"'))
    code, _, err = cli("audit", "verify", "--bundle", str(repack(directory, tmp_path / "edited.zip")))
    assert code == 1 and err.startswith("evidence bundle broken: chain.jsonl was changed")
    assert "event 3: its content does not match its hash" in err
    checked = subprocess.run([sys.executable, "check_chain.py"], cwd=directory, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 1 and "event 3: its content does not match its hash" in checked.stdout
    # the attacker recomputes the checksums too: their signature gives it away
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(directory)}\n"
                   for p in sorted(directory.rglob("*")) if p.is_file() and not p.name.startswith("SHA256SUMS"))
    (directory / "SHA256SUMS").write_text(sums)
    code, _, err = cli("audit", "verify", "--bundle", str(repack(directory, tmp_path / "resummed.zip")))
    assert code == 1 and "SHA256SUMS.sig: the checksums are not signed by the bundle's key" in err


def test_a_bundle_made_with_another_key_is_refused_when_the_auditor_pins_theirs(
        evidence: Path, cli: Run, tmp_path: Path) -> None:
    assert cli("audit", "keygen", str(tmp_path / "theirs"))[0] == 0
    code, _, err = cli("audit", "verify", "--bundle", str(evidence), "--public-key",
                       str(tmp_path / "theirs" / "audit-signing-key.pub.pem"))
    assert code == 1 and "public-key.pem is key " in err and "not the key you gave" in err
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not really")
    code, _, err = cli("audit", "verify", "--bundle", str(tmp_path / "junk.zip"))
    assert code == 2 and err.startswith("opsloop: ") and "not a readable zip" in err


def test_erasing_a_contact_from_the_command_line_names_the_source_that_still_has_them(
        cli: Run, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli("privacy", "erase", "--contact", "nobody@nowhere.example")
    assert code == 0 and out.startswith("erased nobody@nowhere.example: 0 sealed audit value(s)")
    assert cli("accounts", "import", str(ROOT / "accounts.yml"))[0] == 0
    code, out, err = cli("privacy", "erase", "--contact", "ops@acme.example")
    assert code == 1 and out.startswith("erased ops@acme.example: 1 sealed audit value(s); rows changed: "
                                        "accounts 1; 0 undelivered message(s) cancelled; recorded as audit event")
    assert err == (f"still in a configured source: {ROOT / 'accounts.yml'}: account acme still lists this "
                   "contact; remove it there, or it comes back with the next import of that file (or a start on an "
                   "empty catalog)\n")
    with pytest.raises(SystemExit) as usage:
        main(["privacy", "erase", "--contact", "ops@acme.example", "--tenant", "acme"])
    assert usage.value.code == 2 and "not allowed with argument --contact" in capsys.readouterr().err
    assert cli("audit", "verify")[0] == 0
