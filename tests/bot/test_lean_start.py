"""The bot starts without the heavy numeric libraries: scikit-learn (with numpy and scipy) and
matplotlib are loaded only by the health report, calibration and the digest chart, so `opsloop serve`,
`opsloop shell` and the rollout worker do not carry ~120 MB they never use (issues 21 and 22)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

HEAVY = ("sklearn", "matplotlib", "scipy", "numpy", "pandas")

# In a fresh interpreter: the other tests in this process may have loaded them already.
PROGRAM = """
import json, sys
from pathlib import Path
import bot.cli, bot.console, bot.http, bot.slack.wiring
from bot.bootstrap import bootstrap
from bot.settings import Settings
root, db = Path(sys.argv[1]), sys.argv[2]
settings = Settings(database_url=f"sqlite:///{db}", config=root / "opsloop.yml",
                    runbooks_dir=root / "runbooks", playbooks_dir=root / "playbooks")
services = bootstrap(settings, migrate=True)
services.workitems.declare(actor="U0RESP1", title="EU primary down")
services.rollout_worker.work(budget=1)
loaded = sorted(name for name in sys.modules if name.split(".")[0] in json.loads(sys.argv[3]))
services.db.dispose()
print(json.dumps(loaded))
"""


def loaded_after_start(tmp_path: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(ROOT), str(tmp_path / "opsloop.db"), json.dumps(HEAVY)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_bootstrapping_the_bot_loads_no_numeric_library(tmp_path: Path) -> None:
    assert loaded_after_start(tmp_path) == []

