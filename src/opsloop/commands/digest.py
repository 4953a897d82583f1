"""/digest: post the leadership digest to its channel now (leaders and admins)."""

from __future__ import annotations

from opsloop.commands.parse import tokens
from opsloop.digest.service import Digests
from opsloop.errors import UsageError
from opsloop.messages import Reply

DIGEST_HELP = """\
*/digest* — the leadership digest
• `/digest` — post it now to the digest channel (leaders and admins): yesterday's work items, MTTA and
  MTTR against target, SLA attainment, breaches with their accounts' ARR, aging escalations and exceptions,
  at-risk accounts, open feedback loops, remediation, and whether resolution times are in control
• `/digest help`
It is also posted by itself every day at the policy's `digest.at` (once, however many replicas run)."""


class DigestCommands:
    def __init__(self, digests: Digests) -> None:
        self.digests = digests

    def command(self, text: str, actor: str, channel: str | None) -> Reply:
        words = tokens(text)
        if words and words[0].lower() == "help":
            return Reply(DIGEST_HELP)
        if words:
            raise UsageError("usage: /digest (or /digest help)")
        where = self.digests.post(actor=actor)
        return Reply(f"The digest is on its way to <#{where}>, its chart in the thread.")
