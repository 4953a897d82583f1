"""A customer's notice never carries another tenant's name, id, contact or ARR.

A property over random multi-tenant incidents, through the real rendering
path of feedback loops: the shipped customer templates (every event), the
customer's context and the customer webhook's fields. Public updates (text a
person writes) go through the same path: text naming any tenant is refused,
and text that is accepted renders into each tenant's notice naming only it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsloop.bus import Bus
from opsloop.comms.isolation import check_text
from opsloop.errors import InvalidInput
from opsloop.loops.context import money, proposed_text
from opsloop.loops.models import FeedbackLoop
from opsloop.loops.notices import Notices
from opsloop.loops.service import FeedbackLoops
from opsloop.models import Account, WorkItem
from opsloop.policy_loader import load_policy
from tests.support import ROOT, FakeClock

POLICY = load_policy(ROOT / "opsloop.yml")
NOTICES = Notices(POLICY)
LOOPS = FeedbackLoops(db=None, policy=POLICY, clock=FakeClock(), authz=None, bus=Bus())  # type: ignore[arg-type] - rendering only
EVENTS = ("start", "cadence", "update", "resolution")

token = st.text(alphabet="bcdfghjkmnpqrstvwxz", min_size=8, max_size=12)
tenant = st.builds(
    lambda name, ident, arr, tier: Account(
        id=f"t-{ident}", name=f"Zq{name.title()}", tier=tier, arr=arr, csm="U0CSM1",
        sales_owner=f"U0S{ident.upper()}", support_channel="C0SUPPORT",
        contact_email=f"ops-{ident}@{name}.example", region="eu"),
    token, token, st.integers(min_value=10_000, max_value=9_999_999),
    st.sampled_from(["enterprise", "mid-market", "smb"]),
)
tenants = st.lists(tenant, min_size=2, max_size=6, unique_by=(lambda a: a.id, lambda a: a.name,
                                                                lambda a: a.arr))


def traces(account: Account) -> list[str]:
    """What would give another tenant away."""
    return [account.name, account.id, account.contact_email or "", account.sales_owner or "",
            money(account.arr), str(account.arr)]


def incident(accounts: list[Account], severity: str, title: str, state: str) -> WorkItem:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    # an internal title that names every tenant: it must not leak either
    return WorkItem(id=1, ref="INC-7", kind="incident", number=7, severity=severity, state=state,
                    title=f"{title} " + " ".join(a.name for a in accounts), created_by="U0RESP1",
                    labels={}, created_at=start, updated_at=start,
                    mitigated_at=start + timedelta(minutes=30) if state != "triggered" else None,
                    resolved_at=start + timedelta(hours=1) if state == "resolved" else None)


def assert_isolated(accounts: list[Account], item: WorkItem, message: str) -> None:
    for account in accounts:
        loop = FeedbackLoop(work_item_id=1, audience="customers", tenant_id=account.id, transport="email",
                            target=account.contact_email or "", opened_at=item.created_at)
        rendered = ["\n".join(NOTICES.render(loop, item, accounts, event, item.created_at, message))
                    for event in EVENTS]
        rendered.append(str(NOTICES.webhook_fields(loop, item)))
        text = "\n".join(rendered)
        assert account.name in rendered[0]  # it is addressed to its own tenant
        for other in accounts:
            if other.id == account.id:
                continue
            leaked = [t for t in traces(other) if t and t in text]
            assert leaked == [], f"{account.id}'s notice names {other.id}: {leaked}"


@settings(max_examples=150, deadline=None)
@given(accounts=tenants, severity=st.sampled_from(["sev1", "sev2", "sev3"]),
       title=st.text(min_size=1, max_size=80), state=st.sampled_from(["triggered", "mitigated", "resolved"]))
def test_a_customer_notice_only_ever_names_its_own_tenant(
    accounts: list[Account], severity: str, title: str, state: str
) -> None:
    item = incident(accounts, severity, title, state)
    for event in EVENTS:  # what opsloop proposes, as sent
        assert_isolated(accounts, item, proposed_text(item, event, latest="We found the cause."))


words = st.lists(st.sampled_from(["the", "export", "queue", "is", "slow", "again", "we", "rolled", "back",
                                  "since", "10:00", "UTC", "fix", "deployed", "—", "users", "may", "see"]),
                 min_size=1, max_size=30).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(accounts=tenants, severity=st.sampled_from(["sev1", "sev2"]), text=words,
       state=st.sampled_from(["triggered", "mitigated", "resolved"]), data=st.data())
def test_a_public_update_naming_any_tenant_is_refused_and_one_naming_none_reaches_each_alone(
    accounts: list[Account], severity: str, text: str, state: str, data: st.DataObject
) -> None:
    item = incident(accounts, severity, "Export broken", state)
    accepted = check_text(text, accounts)
    assert_isolated(accounts, item, accepted)
    victim = data.draw(st.sampled_from(accounts))
    trace = data.draw(st.sampled_from([victim.name, victim.id, victim.contact_email or victim.id,
                                       victim.name.upper()]))
    where = data.draw(st.integers(min_value=0, max_value=len(text)))
    cut = text.rfind(" ", 0, where) if where else 0
    leaky = f"{text[:max(cut, 0)]} {trace} {text[max(cut, 0):]}".strip()
    with pytest.raises(InvalidInput, match="must name no customer"):
        check_text(leaky, accounts)


@settings(max_examples=100, deadline=None)
@given(accounts=tenants, happened=st.text(max_size=200), changed=st.text(max_size=200),
       leak=st.integers(min_value=-1, max_value=5))
def test_a_reviews_customer_account_only_ever_names_its_own_tenant(
    accounts: list[Account], happened: str, changed: str, leak: int
) -> None:
    """People write the public part: when it would name another tenant, the account is refused."""
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    item = WorkItem(id=1, ref="INC-7", kind="incident", number=7, severity="sev1", state="resolved",
                    title=" ".join(a.name for a in accounts), created_by="U0RESP1", labels={}, created_at=start,
                    updated_at=start, resolved_at=start + timedelta(hours=1))
    if 0 <= leak < len(accounts):  # sometimes the writer names one of the affected customers
        happened += f" {accounts[leak].name} saw it first."
    for account in accounts:
        try:
            text = LOOPS.review_text(item, account, accounts, what_happened=happened, what_we_changed=changed)
        except InvalidInput:
            named = [t for other in accounts if other.id != account.id for t in traces(other)
                     if t.lower() in f"{happened}\n{changed}".lower()]
            assert named, "refused although it names no other tenant"
            continue
        assert f"Hello {account.name} team" in text
        for other in accounts:
            if other.id != account.id:
                leaked = [t for t in traces(other) if t and t in text]
                assert leaked == [], f"{account.id}'s account names {other.id}: {leaked}"
