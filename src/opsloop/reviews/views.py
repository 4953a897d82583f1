"""Plain views of review data that the presenters and the services share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsloop.models import WorkItem
from opsloop.reviews.models import FollowUp, Review


@dataclass(frozen=True)
class FollowUpView:
    followup: FollowUp
    item_ref: str
    item_title: str

    @property
    def ref(self) -> str:
        return self.followup.ref



@dataclass(frozen=True)
class ReviewView:
    review: Review
    item: WorkItem
    doc: dict[str, Any]  # the newest version's document
    followups: list[FollowUp]

    @property
    def ref(self) -> str:
        return self.item.ref
