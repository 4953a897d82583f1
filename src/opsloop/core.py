"""The product assembled from a policy, with the handler table it is given.

`build_core` makes every service once and hands each what it needs by
parameter. Who hears which event is not decided here: `handlers(core)`
returns the table and `timers(core)` the handler of each timer kind.
`opsloop/table.py` holds THE table (the one a newcomer reads) and
`opsloop.table.assemble` passes it here (bot/bootstrap.py, the console, Slack
mode and the tests all build through that); a test of one capability passes
the rows it exercises, e.g.

    core = build_core(..., handlers=lambda c: HandlerTable(on(ItemCreated, c.sla.start_clocks)))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from opsloop.authz import Authorizer, Directory
from opsloop.bus import Bus, HandlerTable
from opsloop.changes.service import Changes
from opsloop.clock import Clock
from opsloop.commands import Commands
from opsloop.compliance.checkpoints import Checkpoints
from opsloop.compliance.retention import RetentionJob
from opsloop.compliance.signing import Signer
from opsloop.db import Database
from opsloop.digest.service import Digests
from opsloop.errors import ConfigError
from opsloop.exception_approvals import ExceptionApprovals
from opsloop.health.play_service import Plays
from opsloop.health.playbooks import Playbooks
from opsloop.health.service import Health
from opsloop.heartbeats.service import Heartbeats
from opsloop.incident_channels import DedicatedChannels
from opsloop.intake.service import Intake
from opsloop.loops.service import FeedbackLoops
from opsloop.maintenance.models import paused_by
from opsloop.maintenance.service import Maintenance
from opsloop.maintenance.silences import Silences
from opsloop.oncall import OnCall
from opsloop.policy import Policy
from opsloop.present.digest import message as digest_message
from opsloop.present.dryrun import DryRun
from opsloop.present.followups import FollowUpWords
from opsloop.present.items import Cards
from opsloop.present.notices import NoticeWords
from opsloop.present.remediation import RemediationWords
from opsloop.present.reviews import ReviewWords
from opsloop.present.rollouts import RolloutWords
from opsloop.present.runbooks import Checklists
from opsloop.present.sla import ClockWords
from opsloop.remediation.http import HttpExecutor
from opsloop.remediation.service import Remediation
from opsloop.reviews.followups import FollowUps
from opsloop.reviews.recurrence import Recurrences
from opsloop.reviews.service import Reviews
from opsloop.rollouts.calls import RolloutWorker
from opsloop.rollouts.decisions import Decisions
from opsloop.rollouts.service import Rollouts
from opsloop.runbooks.loader import Library
from opsloop.runbooks.redesign import RedesignWatch
from opsloop.runbooks.runs import Runbooks
from opsloop.schedules.service import Schedules
from opsloop.sla.escalation import Escalations
from opsloop.sla.service import Sla
from opsloop.status.links import StatusLinks
from opsloop.status.pages import StatusPages
from opsloop.timers.sweeper import Sweeper, TimerHandler
from opsloop.workitems import WorkItems

C = TypeVar("C", bound="Core")


@dataclass
class Core:
    policy: Policy
    db: Database
    clock: Clock
    authz: Authorizer
    bus: Bus
    workitems: WorkItems
    runbooks: Runbooks
    intake: Intake
    changes: Changes  # change events (deploys ...), shown with incidents on the same service
    heartbeats: Heartbeats  # jobs that should check in: a missed check-in opens an incident
    maintenance: Maintenance  # planned work (MNT-n): matching alerts are held, nobody is paged
    schedules: Schedules  # runbooks on a schedule: each tick opens a task (TSK-n)
    loops: FeedbackLoops
    oncall: OnCall
    sla: Sla
    remediation: Remediation  # runs approved http steps (a background job runs its work loop)
    rollouts: Rollouts  # `foreach: tenants` steps: targets pinned, waves, the error budget
    rollout_worker: RolloutWorker  # calls each tenant once (a background job runs its work loop)
    exceptions: ExceptionApprovals  # asks approvers, announces decisions, expires exceptions
    health: Health  # customer health scores, signals (POST /hooks/signals) and CSM prompts
    plays: Plays  # a CSM's plays: playbook steps with due dates, reminders, outcomes
    digests: Digests  # the leadership digest
    followups: FollowUps  # ACT-n: owned, due on the business calendar, reminded, closed with a note
    reviews: Reviews  # post-incident reviews drafted from the record, versioned, published with a hash
    recurrences: Recurrences  # a new item on a theme whose follow-ups were all closed
    channels: DedicatedChannels  # a channel of its own for serious incidents
    redesign: RedesignWatch  # tells runbook owners about steps people keep bypassing
    sweeper: Sweeper  # fires due timers (a background job runs it)
    checkpoints: Checkpoints  # signs the audit chain's head (a background job; `opsloop audit checkpoint`)
    retention: RetentionJob  # the policy's `retention`, applied daily (a background job)
    status_links: StatusLinks  # per-tenant status page links: made, revoked, checked
    status_pages: StatusPages  # what GET /status and GET /status/t/TOKEN show
    # presenters: what people read
    cards: Cards
    checklists: Checklists
    clock_words: ClockWords
    remediation_words: RemediationWords
    followup_words: FollowUpWords
    review_words: ReviewWords
    notice_words: NoticeWords
    rollout_words: RolloutWords
    commands: Commands


def build_core(
    *, policy: Policy, library: Library, playbooks: Playbooks, db: Database, clock: Clock,
    executor: HttpExecutor,
    handlers: Callable[[Core], HandlerTable], timers: Callable[[Core], Mapping[str, TimerHandler]],
    directory: Directory | None = None, signer: Signer | None = None, status_key: str | None = None,
    cls: type[C] = Core,  # type: ignore[assignment]
    **extra: Any,
) -> C:
    """Every service of the product; `cls` (a subclass of Core) may carry `extra` fields."""
    bus = Bus()
    authz = Authorizer(policy, db, clock, directory)
    workitems = WorkItems(db, policy, clock, authz, bus)
    runbooks = Runbooks(db, policy, clock, authz, library, bus)
    heartbeats = Heartbeats(db, policy, clock, workitems, paused_by=paused_by)
    intake = Intake(db, policy, clock, workitems, bus, heartbeats=heartbeats)
    try:
        loops = FeedbackLoops(db, policy, clock, authz, bus)
    except ConfigError as error:
        raise ConfigError(f"{policy.source}: {error}") from None
    oncall = OnCall(db, policy, clock, authz)
    sla = Sla(policy, clock, workitems, Escalations(policy, authz, oncall, bus), bus)
    remediation = Remediation(db, policy, clock, authz, runbooks, executor, bus)
    rollouts = Rollouts(db, policy, clock, authz, runbooks, bus, sla.book)
    health = Health(db, policy, clock, authz, playbooks=playbooks)
    plays = Plays(health)
    digests = Digests(db, policy, clock, authz, digest_message)
    changes = Changes(db, policy, clock)
    maintenance = Maintenance(db, policy, clock, authz, workitems, intake, sla,
                              Silences(policy, executor.client))
    status_links = StatusLinks(db, policy, clock, status_key)
    followups = FollowUps(db, policy, clock, authz, workitems, bus)
    reviews = Reviews(db, policy, clock, authz, workitems, followups, loops, bus)
    cards = Cards(clock, policy, workitems, sla, runbooks, intake, loops, changes)
    checklists = Checklists(cards, runbooks)
    commands = Commands(workitems=workitems, cards=cards, runbooks=runbooks, checklists=checklists, sla=sla,
                        oncall=oncall, remediation=remediation,
                        dry_run=DryRun(db, remediation.gates, executor), health=health, plays=plays,
                        digests=digests, authz=authz, maintenance=maintenance, review=loops.review,
                        followups=followups, reviews=reviews, rollouts=rollouts,
                        decisions=Decisions(rollouts))
    core = cls(
        policy=policy, db=db, clock=clock, authz=authz, bus=bus, workitems=workitems, runbooks=runbooks,
        intake=intake, changes=changes, heartbeats=heartbeats, maintenance=maintenance,
        schedules=Schedules(db, policy, clock, workitems), loops=loops, oncall=oncall, sla=sla,
        remediation=remediation, rollouts=rollouts,
        rollout_worker=RolloutWorker(db, clock, rollouts, executor),
        exceptions=ExceptionApprovals(policy, clock, authz, workitems), health=health, plays=plays,
        digests=digests, followups=followups, reviews=reviews, recurrences=Recurrences(bus),
        channels=DedicatedChannels(db, policy, clock, bus), redesign=RedesignWatch(policy),
        sweeper=Sweeper(db, clock), checkpoints=Checkpoints(db, policy, clock, signer),
        retention=RetentionJob(db, policy, clock), status_links=status_links,
        status_pages=StatusPages(db, policy, clock, status_links),
        cards=cards, checklists=checklists, clock_words=ClockWords(cards),
        remediation_words=RemediationWords(cards, runbooks), followup_words=FollowUpWords(cards),
        review_words=ReviewWords(cards), notice_words=NoticeWords(),
        rollout_words=RolloutWords(cards, rollouts),
        commands=commands, **extra,
    )
    bus.use(handlers(core))
    core.sweeper.use(timers(core))
    return core
