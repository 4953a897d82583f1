"""A published review's customer account, sent to each affected customer through the customer path.

The public part (what happened, what we changed) becomes a customer notice in review like any other
(`opsloop.loops.review`): a draft posted to the item's comms owner (or the people allowed
`notice.approve`) showing each customer's own text, rendered per account through the customer
templates; nothing reaches a customer until someone allowed presses Send, and then it goes on the
item's `customers` loops, where the other customer notices went. No customer reads of another
(refused, not redacted, and nothing is drafted).
"""

from __future__ import annotations

from opsloop import audit
from opsloop.comms.models import NoticeDraft
from opsloop.errors import InvalidInput
from opsloop.reviews.models import PUBLISHED
from opsloop.reviews.service import Reviews
from opsloop.reviews.views import ReviewView


def share(reviews: Reviews, *, actor: str, ref: str) -> tuple[ReviewView, NoticeDraft]:
    """Draft the published review's public part for the item's customers, for review before sending
    (or sent at once where the policy says `send: auto` for customers)."""
    view = reviews.get(ref)
    review = view.review
    reviews.authz.require(
        actor, "review.publish", subject=view.ref, owners=(review.owner,), owner_is="owning the review"
    )
    if review.state != PUBLISHED:
        raise InvalidInput(
            f"publish the review of {view.ref} first: only a published review goes to customers"
        )
    happened = (view.doc.get("public_what_happened") or "").strip()
    changed = (view.doc.get("public_what_we_changed") or "").strip()
    if not happened or not changed:
        raise InvalidInput(
            "the review has no customer account: it was published without "
            "“For customers: what happened” and “what we changed”"
        )
    now = reviews.clock.now()
    with reviews.db.transaction() as session:
        audit.lock_chain(session)
        item = reviews.items.lock(session, ref)
        draft = reviews.loops.share_review(
            session, item, what_happened=happened, what_we_changed=changed, actor=actor, now=now
        )
        audit.record(session, at=now, actor=actor, action="review.shared", subject=item.ref,
                     after={"tenants": draft.tenants, "sha256": review.sha256, "draft": draft.id,
                            "status": draft.status})
        reviews.announce(session, review, item, actor, "shared", now)
    return view, draft
