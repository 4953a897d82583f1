"""The command grammar, table-driven: every command's verbs, and what each says to a mistake.

The refusals run against the real core (the sample policy and catalog) and must change nothing:
no work item, no audit event other than a refused permission, nothing queued for Slack.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import func, select

from opsloop.commands.args import RefType
from opsloop.commands.grammar import Command, Context, Pos, Rest, Verb
from opsloop.commands.tokens import Token, closest, tokens
from opsloop.core import Core
from opsloop.errors import OpsloopError, UsageError
from opsloop.models import AuditEvent, OutboxMessage, WorkItem
from opsloop.table import Sources, assemble
from opsloop.types import Kind
from tests.support import ROOT, FakeClock

COMMANDER, RESPONDER, CSM = "U0RESP1", "U0RESP2", "U0CSM1"


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Core]:
    path = tmp_path_factory.mktemp("grammar") / "opsloop.db"
    path.write_bytes(sqlite_template.read_bytes())
    built = assemble(Sources(database_url=f"sqlite:///{path}", config=ROOT / "opsloop.yml",
                             runbooks_dir=ROOT / "runbooks", playbooks_dir=ROOT / "playbooks"),
                     clock=FakeClock())
    built.commands.handle("/incident", 'declare "Checkout is down" sev2 tenant:acme', actor=COMMANDER)
    built.commands.handle("/escalate", '"Acme cannot export" tenant:acme', actor=CSM)
    built.commands.handle("/exception", '"Skip the freeze"', actor=RESPONDER)
    yield built
    built.db.dispose()


def counts(services: Core) -> tuple[int, int, int]:
    with services.db.transaction() as session:
        return (session.exec(select(func.count()).select_from(WorkItem)).one(),
                session.exec(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action != "permission.denied")).one(),
                session.exec(select(func.count()).select_from(OutboxMessage)).one())


# (command, text, what the refusal says) — the examples of the issue first
REFUSALS = [
    ("/escalate", "resovle ESC-1", "unknown verb 'resovle' — did you mean resolve? To open an escalation, "
                                   "quote its title"),
    ("/incident", 'declare "Login slow" sev5', "'sev5' is not a severity: use sev1, sev2, sev3 or sev4"),
    ("/incident", "assign INC-1 U0NOBODY", "unknown user U0NOBODY: nobody in the people the policy names"),
    ("/incident", "assign INC-1 @nobody", "unknown user @nobody"),
    ("/incident", "resovle INC-1", "unknown verb 'resovle' — did you mean resolve? (verbs: declare, ack"),
    ("/incident", "Checkout is down", "unknown verb 'Checkout' (verbs: declare, ack, mitigate, resolve, close, "),
    ("/incident", "Checkout is down", 'To declare one: `/incident declare "title" [sev1..sev4]`'),
    ("/incident", "ack", "/incident ack needs an incident id (INC-n) — usage: `/incident ack INC-n"),
    ("/incident", "ack ESC-1", "ESC-1 is an escalation: /incident takes an incident id (INC-n); "
                               "for ESC-1 use /escalate"),
    ("/incident", "ack 42", "'42' is not an incident id (INC-n)"),
    ("/incident", "status INC-1 please", "/incident status: 'please' is one word too many"),
    ("/incident", "declare", None),  # the form, not a refusal
    ("/incident", 'declare "x" tenat:acme', "unknown option 'tenat:' — did you mean tenant:?"),
    ("/incident", 'declare "x" sev1 sev2', "give a severity (sev1..sev4) once, not sev1 and sev2"),
    ("/incident", 'declare "x" tenant:', "tenant: needs a value"),
    ("/incident", 'declare "x" tenant:"Acme Corp"', "tenant: 'Acme Corp' is not a tenant id"),
    ("/incident", 'declare "unclosed', "a quote is not closed"),
    ("/incident", "tenants INC-1 remove acme", "'remove' is not add: use add"),
    ("/incident", "tenants INC-1 add", "needs a tenant id"),
    ("/incident", "update INC-1", "/incident update needs \"what changed\" — usage" ),
    ("/incident", "list closd", "'closd' is not understood — did you mean closed?"),
    ("/incident", "comms INC-1 ann", "'ann' is not a user: mention them (@name)"),
    ("/incident", "severity INC-1 sev5", "'sev5' is not a severity: use sev1, sev2, sev3 or sev4"),
    ("/incident", "severity INC-1", "/incident severity needs a severity (sev1..sev4)"),
    ("/incident", "severity INC-1 sev2", "INC-1 is already sev2"),
    ("/incident", "sevrity INC-1 sev1", "did you mean severity?"),
    ("/incident", "role INC-1 juggler @U0RESP2", "'juggler' is not an incident role: use commander, comms"),
    ("/incident", "role INC-1 scribe U0NOBODY", "unknown user U0NOBODY"),
    ("/incident", "role INC-1 scribe", "/incident role needs a user"),
    ("/incident", "close INC-1 --force", "/incident close --force needs the reason"),
    ("/incident", "close INC-1 --forse", "unknown flag --forse — did you mean --force?"),
    ("/incident", "close INC-1", "INC-1 is triggered; it cannot be closed"),
    ("/escalate", "severity ESC-1 sev1", "'severity' is no verb of /escalate"),
    ("/escalate", "ack INC-1", "INC-1 is an incident: /escalate takes an escalation id (ESC-n)"),
    ("/escalate", "please look at ESC-1", "ESC-1 names a work item, but 'please' is no verb of /escalate"),
    ("/escalate", 'ack ESC-1 --force', "--force is not a flag of /escalate ack"),
    ("/exception", 'aprove EXC-1', "did you mean approve? To request an exception, quote what and why"),
    ("/exception", '"x" expires:4x', "expires: invalid duration '4x'"),
    ("/exception", '"x" expires:4h expires:5h', "expires: given twice"),
    ("/exception", "approve", "/exception approve needs an exception id (EXC-n)"),
    ("/runbook", "run", "/runbook run needs a runbook id"),
    ("/runbook", "run generic-incident INC-1 service", "'service' is not understood: give inputs as key=value"),
    ("/runbook", "run generic-incident INC-1 a=1 a=2", "a: given twice"),
    ("/runbook", "run generic-incident INC-1 --dryrun", "unknown flag --dryrun — did you mean --dry-run?"),
    ("/runbook", "skip INC-1 check", "/runbook skip needs a reason"),
    ("/runbook", "confirm INC-1 call maybe", "'maybe' is not an outcome (succeeded or failed)"),
    ("/runbook", "dne INC-1 check", "did you mean done?"),
    ("/runbook", "show", "/runbook show needs a runbook id"),
    ("/oncall", "overide @U0RESP2 until 18:00", "did you mean override? To see a team, name it"),
    ("/oncall", "nosuch", "no on-call team 'nosuch' (teams: sre)"),
    ("/oncall", "override @U0RESP2", "/oncall override needs `until TIME`"),
    ("/oncall", "override until 18:00", "/oncall override needs a user"),
    ("/oncall", "override @U0NOBODY until 18:00", "unknown user U0NOBODY"),
    ("/oncall", "override @U0RESP2 until", "until: needs a time"),
    ("/health", "reprot", "did you mean report? To see an account, give its id"),
    ("/health", "plays everyone", "'everyone' is not understood (it takes all, mine or overdue)"),
    ("/health", "close PLAY-1 won great", "'won' is not an outcome"),
    ("/health", "play", "/health play needs a play (PLAY-n)"),
    ("/health", "done PLAY-x step", "'PLAY-x' is not a play (PLAY-n)"),
    ("/digest", "now", "/digest: 'now' is one word too many — usage: `/digest`"),
    ("/digest", "pots", "did you mean post?"),
    ("/maintenance", 'schedule "x" from now until +1h', "name the alerts it covers with matchers"),
    ("/maintenance", 'schedule "x" service=db', "/maintenance schedule needs `until TIME`"),
    ("/maintenance", 'schedule service=db until +1h', '/maintenance schedule needs "what is planned"'),
    ("/maintenance", 'schedule "x" env=~prod( until +1h', "invalid regular expression"),
    ("/maintenance", 'schedule "x" service~=db until +1h', "'service~=db' is not understood"),
    ("/maintenance", 'schedule "x" service=db until soon', "cannot read the time 'soon'"),
    ("/maintenance", 'schedule "x" service=db until +1h tenant:nobody', "unknown tenant nobody"),
    ("/maintenance", 'schedule "x" env=~.* until +1h', "these matchers match every alert"),
    ("/maintenance", "end INC-1", "INC-1 is an incident: /maintenance takes a maintenance window id (MNT-n)"),
    ("/maintenance", "shedule", "unknown verb 'shedule' — did you mean schedule?"),
]


@pytest.mark.parametrize(("command", "text", "says"), REFUSALS)
def test_each_mistake_is_refused_in_english_and_changes_nothing(core: Core, command: str, text: str,
                                                                says: str | None) -> None:
    before = counts(core)
    if says is None:
        assert core.commands.handle(command, text, actor=COMMANDER).form is not None
    else:
        with pytest.raises(OpsloopError) as refused:
            core.commands.handle(command, text, actor=COMMANDER)
        assert says in str(refused.value)
        assert "Traceback" not in str(refused.value)
    assert counts(core) == before


def every_verb(services: Core) -> Iterator[tuple[Command, Verb]]:
    for command in services.commands.commands.values():
        for verb in command.verbs:
            yield command, verb


def test_every_command_lists_every_verb_with_its_usage_in_its_help(core: Core) -> None:
    for command, verb in every_verb(core):
        text = core.commands.handle(command.name, "help", actor=COMMANDER).text
        assert f"`{verb.usage(command.name, default=verb.name == command.default)}` — {verb.help}" in text
    assert set(core.commands.names) == {"/incident", "/escalate", "/exception", "/runbook", "/oncall",
                                        "/health", "/digest", "/maintenance", "/followup"}


def test_every_verb_refuses_a_missing_argument_and_a_stray_word(core: Core) -> None:
    """Derived from each declaration: what it needs first, and one word more than it takes."""
    checked = 0
    for command, verb in every_verb(core):
        prefix = "" if verb.name == command.default else f"{verb.name} "
        first = next((p for p in verb.params if isinstance(p, Pos) and not p.optional), None)
        if first is not None and verb.bare is None:
            with pytest.raises(UsageError, match="needs "):
                core.commands.handle(command.name, prefix.strip(), actor=COMMANDER)
            checked += 1
        if not verb.params:
            with pytest.raises(UsageError, match="'stray' is one word too many"):
                core.commands.handle(command.name, f"{prefix}stray", actor=COMMANDER)
            checked += 1
    assert checked >= 30


def test_every_work_item_id_argument_names_the_command_for_another_kind(core: Core) -> None:
    other = {Kind.INCIDENT: "EXC-1", Kind.ESCALATION: "INC-1", Kind.EXCEPTION: "ESC-1", Kind.MAINTENANCE: "INC-1"}
    checked = 0
    for command, verb in every_verb(core):
        ref = next((p for p in verb.params if isinstance(p, Pos) and isinstance(p.type, RefType)), None)
        if ref is None or not isinstance(ref.type, RefType) or len(ref.type.kinds) != 1:
            continue
        wrong = other[ref.type.kinds[0]]
        with pytest.raises(UsageError, match=f"{wrong} is an? \\w+: {command.name} takes"):
            core.commands.handle(command.name, f"{verb.name} {wrong} x y", actor=COMMANDER)
        checked += 1
    assert checked >= 25


def test_typed_arguments_reach_the_verb_as_values(core: Core) -> None:
    seen: dict[str, Any] = {}
    command = Command("/try", "a test command", [
        Verb("go", "go", Pos("ref", RefType((Kind.INCIDENT,))), Rest("note"),
             run=lambda args: seen.update(args) or core.commands.handle("/incident", "help", actor="x")),
    ])
    command.run("go inc-7 it is \u201cfine\u201d", Context("/try", COMMANDER, None, core.commands.people))
    assert seen == {"ref": "INC-7", "note": "it is fine"}


@pytest.mark.parametrize(("text", "words"), [
    ('declare "Login slow" sev2', [("declare", False), ("Login slow", True), ("sev2", False)]),
    ("\u201cCurly quotes\u201d tenant:acme", [("Curly quotes", True), ("tenant:acme", False)]),
    ("Acme can't export", [("Acme", False), ("can't", False), ("export", False)]),
    ('tenant:"acme corp" "sev5"', [("tenant:acme corp", False), ("sev5", True)]),
    ("'single quoted' x", [("single quoted", True), ("x", False)]),
    (r"a\ b", [("a b", False)]),
])
def test_words_keep_what_was_quoted(text: str, words: list[tuple[str, bool]]) -> None:
    assert tokens(text) == [Token(t, q) for t, q in words]


def test_did_you_mean_offers_only_the_nearest() -> None:
    verbs = ["declare", "ack", "mitigate", "resolve", "close", "reopen", "resume", "assign"]
    assert closest("resovle", verbs) == ["resolve"]
    assert closest("asign", verbs) == ["assign"]
    assert closest("zzz", verbs) == []
