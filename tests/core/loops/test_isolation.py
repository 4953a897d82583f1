"""A customer's notice never carries another tenant's name, id, contact or ARR.

A property over random multi-tenant incidents, through the real rendering
path of feedback loops: the shipped customer templates (every event), the
customer's context and the customer webhook's fields.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from opsloop.loops.context import money
from opsloop.loops.models import FeedbackLoop
from opsloop.loops.service import FeedbackLoops
from opsloop.models import Account, WorkItem
from opsloop.policy import load_policy
from opsloop.templating import render
from tests.support import ROOT, FakeClock

POLICY = load_policy(ROOT / "opsloop.yml")
LOOPS = FeedbackLoops(db=None, policy=POLICY, clock=FakeClock())  # type: ignore[arg-type] - rendering only

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


@settings(max_examples=150, deadline=None)
@given(accounts=tenants, severity=st.sampled_from(["sev1", "sev2", "sev3"]),
       title=st.text(min_size=1, max_size=80), resolved=st.booleans())
def test_a_customer_notice_only_ever_names_its_own_tenant(
    accounts: list[Account], severity: str, title: str, resolved: bool
) -> None:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    # an internal title that names every tenant: it must not leak either
    item = WorkItem(id=1, ref="INC-7", kind="incident", number=7, severity=severity, state="triggered",
                    title=f"{title} " + " ".join(a.name for a in accounts), created_by="U0RESP1",
                    labels={}, created_at=start, updated_at=start,
                    resolved_at=start + timedelta(hours=1) if resolved else None)
    audience = POLICY.audiences["customers"]
    for account in accounts:
        loop = FeedbackLoop(work_item_id=1, audience="customers", tenant_id=account.id, transport="email",
                            target=account.contact_email or "", opened_at=start)
        context = LOOPS._context(loop, item, accounts, audience, start)
        rendered = [render(LOOPS.env, LOOPS.env.loader.get_source(LOOPS.env, f"customers_{event}.j2")[0],  # type: ignore[union-attr]
                           context, what="customers")
                    for event in ("start", "cadence", "resolution")]
        rendered.append(str(LOOPS._webhook_fields(loop, item)))
        text = "\n".join(rendered)
        assert account.name in rendered[0]  # it is addressed to its own tenant
        for other in accounts:
            if other.id == account.id:
                continue
            leaked = [t for t in traces(other) if t and t in text]
            assert leaked == [], f"{account.id}'s notice names {other.id}: {leaked}"
