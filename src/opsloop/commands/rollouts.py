"""`/runbook resume|abort|rollback|tenant` and the buttons of a rollout's progress message and page."""

from __future__ import annotations

from opsloop.commands.args import ANY_ID, STEP_ID, TENANT, Choice
from opsloop.commands.grammar import Args, Pos, Rest, Run, Verb
from opsloop.errors import NotFound, UsageError
from opsloop.messages import Reply, escape
from opsloop.present.rollouts import counts_text, progress_message
from opsloop.rollouts import models as M
from opsloop.rollouts.decisions import Decided, Decisions
from opsloop.rollouts.service import Rollouts

MAX_LISTED = 60  # tenants named per state in `/runbook status` (the CSV has them all)


class RolloutCommands:
    def __init__(self, rollouts: Rollouts, decisions: Decisions) -> None:
        self.rollouts = rollouts
        self.decisions = decisions

    def verbs(self) -> list[Verb]:
        ref, step = Pos("ref", ANY_ID), Pos("step", STEP_ID)
        return [
            Verb(
                "resume",
                "go on with a halted rollout (its errors so far set aside)",
                ref,
                step,
                run=self._verb("resume"),
            ),
            Verb(
                "abort",
                "stop a rollout: tenants not called yet never are",
                ref,
                step,
                Rest("reason"),
                run=self._verb("abort"),
            ),
            Verb(
                "rollback",
                "call the rollback request of every tenant a halted rollout has done",
                ref,
                step,
                run=self._verb("rollback"),
            ),
            Verb(
                "tenant",
                "settle one tenant of a rollout whose call is unknown, or call it again",
                ref,
                step,
                Pos("tenant", TENANT),
                Pos("outcome", Choice(("succeeded", "failed", "retry"), "succeeded, failed or retry")),
                run=self._tenant,
            ),
        ]

    def wave(self, args: Args, verb: str) -> Reply | None:
        """`/runbook approve|reject INC-n STEP` on a rollout step whose wave waits for approval."""
        try:
            rollout_id = self.rollouts.locate(args["ref"], args["step"])
        except NotFound:  # not a rollout step: the ordinary approval verbs answer
            return None
        return self._answer(
            self.decisions.decide(
                actor=args.actor, rollout_id=rollout_id, verb=verb, reason=args.get("reason")
            )
        )

    def _verb(self, verb: str) -> Run:
        def run(args: Args) -> Reply:
            rollout_id = self.rollouts.locate(args["ref"], args["step"])
            return self._answer(
                self.decisions.decide(
                    actor=args.actor, rollout_id=rollout_id, verb=verb, reason=args.get("reason")
                )
            )

        return run

    def _tenant(self, args: Args) -> Reply:
        rollout_id = self.rollouts.locate(args["ref"], args["step"])
        return Reply(
            self.decisions.settle(
                actor=args.actor, rollout_id=rollout_id, tenant=args["tenant"], verb=args["outcome"]
            )
        )

    def press(self, verb: str, value: str, actor: str) -> Reply:
        if not value.isdigit():
            raise UsageError(f"this button carries no rollout ({value!r})")
        return self._answer(self.decisions.decide(actor=actor, rollout_id=int(value), verb=verb))

    def _answer(self, decided: Decided) -> Reply:
        return Reply(f"{decided.ref} rollout `{decided.step_id}`: {decided.note}")

    # ------------------------------------------------------------------ status

    def status(self, ref: str) -> list[str]:
        """Each rollout on the item: how it stands and every tenant's outcome, by state."""
        lines: list[str] = []
        for report, rows in self.rollouts.of_item(ref):
            shown = progress_message(ref, report)
            lines += [f"*{shown.text}*", counts_text(report.counts) or "no tenants"]
            by_state: dict[str, list[str]] = {}
            for row in rows:
                by_state.setdefault(str(row["state"]), []).append(str(row["tenant"]))
            for state in sorted(by_state, key=lambda s: (s == M.SUCCEEDED, s)):
                names = by_state[state]
                more = f" … and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
                lines.append(
                    f"• {state.replace('_', ' ')} ({len(names)}): "
                    f"{', '.join(escape(n) for n in names[:MAX_LISTED])}{more}"
                )
            for failure in report.failures:
                lines.append(f"  `{failure.tenant}` {failure.state}: {escape(failure.why[:200])}")
            if report.window_waits:
                lines.append(f"⏰ {report.window_waits} wait for their maintenance window")
                lines += [f"  `{w.tenant}` {escape(w.why[:200])}" for w in report.windows]
            lines.append(f"every tenant: `opsloop runbooks rollout {report.run_id} --csv`")
        return lines
