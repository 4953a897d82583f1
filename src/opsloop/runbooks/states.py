"""The states of a run and of its steps.

    step:  waiting ─► open ─────────► done | skipped | worked_around    (manual)
                      open ─────────► approved | rejected               (approval)
                      (posted) ─────► done                              (notify)
                      executor                                          (http: a later issue runs it)
           waiting ─► skipped (its `when` is false)  ·  waiting ─► blocked (a prerequisite was rejected)
"""

from __future__ import annotations

from opsloop.types import OPSLOOP

WAITING = "waiting"  # prerequisites not met yet
OPEN = "open"  # waits for people: Done / Skip, or Approve / Reject
EXECUTOR = "executor"  # an http step, waiting for the remediation executor
DONE = "done"
SKIPPED = "skipped"
WORKED_AROUND = "worked_around"
APPROVED = "approved"
REJECTED = "rejected"
BLOCKED = "blocked"

SATISFIED = frozenset({DONE, SKIPPED, WORKED_AROUND, APPROVED})  # lets the steps after it start
STOPPING = frozenset({REJECTED, BLOCKED})  # steps after it can never start
TERMINAL = SATISFIED | STOPPING
BYPASSED = frozenset({SKIPPED, WORKED_AROUND})  # what the redesign trigger counts

RUN_NEEDS_INPUTS = "needs_inputs"  # attached by routing; waits for the inputs only people know
RUN_RUNNING = "running"
RUN_COMPLETED = "completed"
RUN_STOPPED = "stopped"  # an approval was rejected
RUN_OPEN = frozenset({RUN_NEEDS_INPUTS, RUN_RUNNING})

AUTOMATIC = OPSLOOP  # the actor of what the runbook engine does by itself
