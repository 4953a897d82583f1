"""Incident roles (`/incident role INC-n ROLE @user`): who leads, who talks, who writes things down.

`commander` is the incident's owner and `comms` its comms owner, so `/incident assign` and
`/incident comms` are shorthands for those two (and need `incident.assign`); the other roles the
policy names (`incident_roles`) need `incident.role` and are held in `incident_roles` rows. Every
change is audited and published as `ItemChanged` (`role`), so the card and the timeline follow.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.errors import InvalidInput
from opsloop.incident_roles.config import COLUMN_OF, duties
from opsloop.incident_roles.models import IncidentRole
from opsloop.messages import user
from opsloop.models import WorkItem
from opsloop.policy import Policy
from opsloop.types import Kind
from opsloop.workitems import WorkItems, kind_of


def holders(session: Session, policy: Policy, item: WorkItem) -> list[tuple[str, str, str | None]]:
    """Each incident role the policy names: (role, duty, who holds it or None), commander first."""
    held = {r.role: r.user for r in session.exec(
        select(IncidentRole).where(IncidentRole.work_item_id == item.id).order_by(col(IncidentRole.role)))}
    named = duties(policy.incident_roles)
    return [(role, duty, getattr(item, COLUMN_OF[role]) if role in COLUMN_OF else held.get(role))
            for role, duty in named.items()]


class IncidentRoles:
    def __init__(self, workitems: WorkItems) -> None:
        self.items = workitems

    @property
    def names(self) -> list[str]:
        return list(duties(self.items.policy.incident_roles))

    def assign(self, *, actor: str, ref: str, role: str, who: str) -> WorkItem:
        """Give `role` on incident `ref` to `who` (commander: the owner; comms: the comms owner)."""
        if kind_of(ref) is not Kind.INCIDENT:
            raise InvalidInput(f"{ref.upper()} is no incident: only incidents have roles")
        if role not in self.names:
            raise InvalidInput(f"no incident role '{role}' (roles: {', '.join(self.names)})")
        if role in COLUMN_OF:
            return self.items.assign(actor=actor, ref=ref, **{COLUMN_OF[role]: who})
        self.items.authz.require(actor, "incident.role", subject=ref.upper())
        now = self.items.clock.now()
        with self.items.db.transaction() as session:
            audit.lock_chain(session)
            item = self.items.lock(session, ref)
            assert item.id is not None
            row = session.get(IncidentRole, (item.id, role))
            before = row.user if row is not None else None
            if before == who:
                raise InvalidInput(f"{user(who)} already is the {role} of {item.ref}")
            if row is None:
                row = IncidentRole(work_item_id=item.id, role=role, user=who, assigned_by=actor,
                                   assigned_at=now)
            else:
                row.user, row.assigned_by, row.assigned_at = who, actor, now
            session.add(row)
            session.flush()
            self.items.record_held_in(session, item, actor=actor, action="role",
                                      before={f"role.{role}": before}, after={f"role.{role}": who})
        return item
