"""What a feature's service is handed, said once: the database, the policy, the clock and who may do
what. A service adds what else it needs after these four:

    @dataclass(eq=False)
    class OnCall(Service):
        ...

`eq=False` on each subclass too: a service equals only itself, so its bound methods (the handlers in
the table) hash by identity and stay usable as keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsloop.authz import Authorizer
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.policy import Policy


@dataclass(eq=False)
class Service:
    db: Database
    policy: Policy
    clock: Clock
    authz: Authorizer
