"""A published review's customer account, sent to each affected customer through the customer path.

The public part (what happened, what we changed) is rendered per account through the customer
templates of the feedback loops and queued on the item's `customers` loops, so it goes where the
other customer notices went, and no customer reads of another (refused, not redacted). There is no
review-before-send step for customer notices yet: publishing the review is the review.
"""

from __future__ import annotations

from opsloop import audit
from opsloop.errors import InvalidInput
from opsloop.reviews.models import PUBLISHED
from opsloop.reviews.service import Reviews
from opsloop.reviews.views import ReviewView


def share(reviews: Reviews, *, actor: str, ref: str) -> tuple[ReviewView, list[str]]:
    """Send the published review's public part to the item's customers, each rendered for its own
    account through the customer templates and the customers' feedback loops (all or nothing)."""
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
        told = reviews.loops.share_review(
            session, item, what_happened=happened, what_we_changed=changed, now=now
        )
        audit.record(
            session,
            at=now,
            actor=actor,
            action="review.shared",
            subject=item.ref,
            after={"tenants": told, "sha256": review.sha256},
        )
        reviews.announce(session, review, item, actor, "shared", now)
    return view, told
