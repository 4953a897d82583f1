"""`opsloop shell` started outside the folder that holds opsloop.yml says what it looked for and how to point at one."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main


def test_shell_outside_the_repo_names_the_file_it_looked_for_and_opsloop_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("OPSLOOP_CONFIG", "OPSLOOP_RUNBOOKS_DIR", "OPSLOOP_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["shell", "--as", "U0RESP1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"opsloop: no policy file at {tmp_path / 'opsloop.yml'}: ")
    assert "OPSLOOP_CONFIG=/path/to/opsloop.yml" in err and "Traceback" not in err
    assert not (tmp_path / "opsloop.db").exists()  # nothing was created on the way
