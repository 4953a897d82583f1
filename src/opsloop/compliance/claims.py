"""Claims of periodic jobs, so that each period's run happens once however many replicas run it.

The claim is a `ComplianceRun` row whose primary key is (job, period): the
caller takes the audit chain's head first (the lock order of every writer),
so concurrent claimers queue there and the later one finds the period taken;
the primary key holds it even without that (the caller then sees an
IntegrityError and treats the period as taken).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from opsloop.compliance.models import ComplianceRun


def claim(session: Session, job: str, period: str, now: datetime,
          outcome: dict[str, Any] | None = None) -> ComplianceRun | None:
    """Claim (job, period) in the caller's transaction; None when it was claimed already."""
    if session.get(ComplianceRun, (job, period)) is not None:
        return None
    run = ComplianceRun(job=job, period=period, at=now, outcome=outcome or {})
    session.add(run)
    session.flush()
    return run
