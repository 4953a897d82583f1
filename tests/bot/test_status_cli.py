"""`opsloop status link|revoke TENANT`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from tests.bot.conftest import Run
from tests.support import ROOT


@pytest.fixture
def cli(run_cli: Run) -> Run:
    return run_cli


def test_link_prints_the_full_url_again_and_again_until_revoked(cli: Run) -> None:
    code, out, err = cli("status", "link", "acme")
    assert code == 0 and err == ""
    url = out.strip()
    assert url.startswith("https://opsloop.example.com/status/t/") and "acme" not in url
    assert cli("status", "link", "acme")[1].strip() == url
    code, out, _ = cli("status", "revoke", "acme")
    assert code == 0 and "revoked acme's status link" in out
    assert cli("status", "revoke", "acme")[1].strip() == "acme had no status link; nothing changed"
    fresh = cli("status", "link", "acme")[1].strip()
    assert fresh != url and fresh.startswith("https://opsloop.example.com/status/t/")


def test_unknown_tenants_and_missing_arguments_exit_2(cli: Run) -> None:
    code, _, err = cli("status", "link", "nobody")
    assert code == 2 and "unknown tenant 'nobody'" in err
    assert cli("status", "revoke", "nobody")[0] == 2
    with pytest.raises(SystemExit) as exited:
        main(["status", "link"])
    assert exited.value.code == 2


def test_without_a_base_url_the_link_uses_the_servers_default_address_and_says_so(
        cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "opsloop.yml").read_text().replace("  base_url: https://opsloop.example.com\n", "")
    policy = tmp_path / "opsloop.yml"
    policy.write_text(text.replace("accounts: accounts.yml", f"accounts: {ROOT / 'accounts.yml'}"))
    (tmp_path / "playbooks").symlink_to(ROOT / "playbooks")
    monkeypatch.setenv("OPSLOOP_CONFIG", str(policy))
    code, out, err = cli("status", "link", "globex")
    assert code == 0 and out.startswith("http://127.0.0.1:3000/status/t/")
    assert "status.base_url is not set" in err


def test_a_short_status_key_is_refused_at_start(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSLOOP_STATUS_KEY", "short")
    code, _, err = cli("status", "link", "acme")
    assert code == 2 and "OPSLOOP_STATUS_KEY must be at least 32" in err
