"""One source of truth for accounts: the policy's accounts file seeds an empty catalog, and only that.

After the first start the catalog is the truth and `opsloop accounts import` changes it; no later
start, with the file unchanged or edited, silently puts back what an import changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from sqlmodel import select

from bot.bootstrap import bootstrap
from bot.cli import main
from bot.settings import Settings
from opsloop.models import Account
from tests.core.compliance.chain import restore_schema
from tests.support import ROOT, FakeClock

Cli = Callable[..., int]


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "accounts.yml"
    path.write_text((ROOT / "accounts.yml").read_text())
    return path


def policy_file(tmp_path: Path, accounts: Path | None) -> Path:
    policy = yaml.safe_load((ROOT / "opsloop.yml").read_text())
    policy.pop("accounts", None)
    if accounts is not None:
        policy["accounts"] = str(accounts)
    path = tmp_path / "opsloop.yml"
    path.write_text(yaml.safe_dump(policy))
    return path


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], Cli]]:
    def for_policy(policy: Path) -> Cli:
        monkeypatch.setenv("OPSLOOP_DATABASE_URL", db_url)
        monkeypatch.setenv("OPSLOOP_CONFIG", str(policy))
        monkeypatch.setenv("OPSLOOP_RUNBOOKS_DIR", str(ROOT / "runbooks"))
        monkeypatch.setenv("OPSLOOP_PLAYBOOKS_DIR", str(ROOT / "playbooks"))
        return lambda *args: main(list(args))

    yield for_policy
    restore_schema(db_url)


def start(db_url: str, policy: Path, clock: FakeClock) -> dict[str, str | None]:
    """Start the bot as `serve` would, and read every account's CSM."""
    services = bootstrap(Settings(database_url=db_url, config=policy, runbooks_dir=ROOT / "runbooks",
                                  playbooks_dir=ROOT / "playbooks"), clock=clock)
    try:
        with services.db.transaction() as session:
            return {a.id: a.csm for a in session.exec(select(Account)).all()}
    finally:
        services.db.dispose()


def csv_changing_acme_csm(tmp_path: Path, csm: str) -> Path:
    path = tmp_path / "change.csv"
    path.write_text("id,name,tier,arr,csm\n" f"acme,Acme Corp,enterprise,480000,{csm}\n")
    return path


def test_an_import_survives_restarts_with_the_file_unchanged_and_edited(
        db_url: str, clock: FakeClock, tmp_path: Path, catalog: Path, cli: Callable[[Path], Cli],
        caplog: pytest.LogCaptureFixture) -> None:
    policy = policy_file(tmp_path, catalog)
    assert start(db_url, policy, clock) == {"acme": "U0CSM1", "globex": "U0CSM1", "initech": "U0CSM1"}  # seeded
    assert cli(policy)("accounts", "import", str(csv_changing_acme_csm(tmp_path, "U0CSM2"))) == 0

    with caplog.at_level(logging.WARNING, logger="opsloop.table"):
        assert start(db_url, policy, clock)["acme"] == "U0CSM2"  # the file, unchanged, undoes nothing
    warning = caplog.text
    assert "differs from the account catalog for 1 account(s) (acme)" in warning
    assert f"run `opsloop accounts import {catalog}`" in warning

    # someone edits the file (another account): a start still applies nothing, and says what differs
    catalog.write_text(catalog.read_text().replace("arr: 12000", "arr: 13000"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="opsloop.table"):
        after = start(db_url, policy, clock)
    assert after["acme"] == "U0CSM2"
    assert "for 2 account(s) (acme, initech)" in caplog.text

    # applying the file is a deliberate act, and then the file is what the catalog says
    assert cli(policy)("accounts", "import", str(catalog)) == 0
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="opsloop.table"):
        assert start(db_url, policy, clock)["acme"] == "U0CSM1"
    assert "differs" not in caplog.text


def test_accounts_import_works_whether_or_not_the_policy_names_a_file(
        db_url: str, clock: FakeClock, tmp_path: Path, catalog: Path, cli: Callable[[Path], Cli]) -> None:
    bare = policy_file(tmp_path, None)
    assert start(db_url, bare, clock) == {}  # no file: an empty catalog, nothing seeded
    assert cli(bare)("accounts", "import", str(csv_changing_acme_csm(tmp_path, "U0CSM3"))) == 0
    assert start(db_url, bare, clock) == {"acme": "U0CSM3"}
    # naming a file later seeds nothing into a catalog that already holds accounts
    named = policy_file(tmp_path, catalog)
    assert start(db_url, named, clock) == {"acme": "U0CSM3"}
    assert cli(named)("accounts", "import", str(csv_changing_acme_csm(tmp_path, "U0CSM4"))) == 0
    assert start(db_url, named, clock) == {"acme": "U0CSM4"}
