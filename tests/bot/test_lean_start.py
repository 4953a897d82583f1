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



# A server's digest: drawn by a child process, the picture the same as drawn in the process itself.
SERVER_DIGEST = """
import json, sys
from pathlib import Path
from bot.bootstrap import bootstrap
from bot.cli import long_running
from bot.settings import Settings
root, db = Path(sys.argv[1]), sys.argv[2]
settings = Settings(database_url=f"sqlite:///{db}", config=root / "opsloop.yml",
                    runbooks_dir=root / "runbooks", playbooks_dir=root / "playbooks")
services = bootstrap(settings, migrate=True)
long_running(services)
digest = services.digests.build()
png = services.digests.chart(digest)
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "matplotlib")
from opsloop.digest.chart import mttr_chart
same = png == mttr_chart(digest.control, digest.by_severity, targets=digest.targets,
                         first=digest.first_day, last=digest.day)
services.db.dispose()
print(json.dumps({"loaded": loaded, "png": png[:8].hex(), "same": same}))
"""


def test_a_server_draws_the_digest_chart_in_a_child_process(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SERVER_DIGEST, str(ROOT), str(tmp_path / "opsloop.db")],
                          cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["loaded"] == []  # matplotlib stayed out of the server's heap
    assert found["png"] == "89504e470d0a1a0a"  # a PNG
    assert found["same"] is True
