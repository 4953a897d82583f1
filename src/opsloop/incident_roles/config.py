"""The `incident_roles` section of the policy file (owned here; `opsloop.policy` imports it).

    incident_roles:                 # role -> its one-line duty, shown on the incident's card
      commander: Leads the response; decides, delegates, and hands off explicitly
      comms: Keeps stakeholders and customers told, on the update cadence
      scribe: Keeps the timeline: decisions, times and who did what
      liaison: Speaks with the affected customers' teams

`commander` is the incident's owner and `comms` its comms owner (`/incident assign` and
`/incident comms` set them); both always exist, with the duties below unless the policy says
otherwise. The other roles are held in `incident_roles` rows.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

COMMANDER, COMMS = "commander", "comms"
DEFAULT_DUTIES = {
    COMMANDER: "Leads the response: decides, delegates, and hands off explicitly",
    COMMS: "Keeps stakeholders and customers told, on the update cadence",
}
# the role held in a work item column: commander -> owner, comms -> comms_owner
COLUMN_OF = {COMMANDER: "owner", COMMS: "comms_owner"}

RoleName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Duty = Annotated[str, Field(pattern=r"^[^\n\r]{1,200}$")]


def duties(configured: dict[str, str]) -> dict[str, str]:
    """Every incident role with its duty: commander and comms first, then the policy's, in its order."""
    return {**DEFAULT_DUTIES, **{k: v for k, v in configured.items() if k in DEFAULT_DUTIES},
            **{k: v for k, v in configured.items() if k not in DEFAULT_DUTIES}}
