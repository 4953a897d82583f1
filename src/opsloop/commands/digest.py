"""/digest: post the leadership digest to its channel now (leaders and admins)."""

from __future__ import annotations

from opsloop.commands.grammar import Args, Command, Verb
from opsloop.digest.service import Digests
from opsloop.messages import Reply


class DigestCommands:
    def __init__(self, digests: Digests) -> None:
        self.digests = digests

    def command(self) -> Command:
        return Command("/digest", "the leadership digest", [
            Verb("post", "post it now to the digest channel (leaders and admins): yesterday's work items, "
                 "MTTA and MTTR against target, SLA attainment, breaches with their accounts' ARR, aging "
                 "escalations and exceptions, at-risk accounts, open feedback loops, remediation, and "
                 "whether resolution times are in control", run=self.post),
        ], default="post", hint="`/digest` alone posts it.",
            footer="It is also posted by itself every day at the policy's `digest.at` "
                   "(once, however many replicas run).")

    def post(self, args: Args) -> Reply:
        where = self.digests.post(actor=args.actor)
        return Reply(f"The digest is on its way to <#{where}>, its chart in the thread.")
