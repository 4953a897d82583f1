"""The feedback loops' part of the policy (`audiences:`, `loops:`, `product_priority:`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from opsloop.fields import Duration, Strict
from opsloop.types import Kind, Severity, Tier

AudienceName = Literal["sales", "support", "customers", "product"]
# `rollout`: a tenant's customers hear when its wave of a fleet rollout starts and when it is done
# (templates `rollout_start`, `rollout_done`)
LoopEvent = Literal["start", "cadence", "resolution", "maintenance", "rollout", "rollout_start",
                    "rollout_done"]
# what a template may be written for: the events, and `update` (customers: a public update in review)
TemplateName = Literal["start", "cadence", "resolution", "maintenance", "rollout", "rollout_start",
                       "rollout_done", "update"]


class AudienceFilter(Strict):
    """Which work items an audience hears about; an empty list means any."""

    kinds: list[Kind] = []
    severities: list[Severity] = []
    tiers: list[Tier] = []  # matches when any affected account has one of these tiers


class Webhook(Strict):
    url_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]  # the URL is a secret too


class Audience(Strict):
    when: AudienceFilter = AudienceFilter()
    events: list[LoopEvent] = ["start", "resolution"]
    cadence: Duration | None = None  # how often "cadence" notices go out while open
    templates: dict[TemplateName, str] = {}  # override the shipped Jinja2 templates
    webhook: Webhook | None = None  # support: a ticket system; customers: per account instead
    from_address: str = "status@opsloop.example"  # customers: the email sender
    # auto: notices go out as they are made; review: each is a draft a person allowed
    # `notice.approve` (or the item's comms owner) sends, edits or skips.
    # Default: review for customers, auto for the internal audiences.
    send: Literal["auto", "review"] | None = None

    def sends(self, name: str) -> str:
        """`auto` or `review` for the audience called `name`."""
        return self.send or ("review" if name == "customers" else "auto")

    @model_validator(mode="after")
    def _cadence(self) -> Audience:
        if "cadence" in self.events and self.cadence is None:
            raise ValueError("`cadence` in events needs a cadence duration, e.g. cadence: 1h")
        return self


class Loops(Strict):
    report_after: Duration = timedelta(hours=24)  # open loops past this after resolution are reported
    # customers hear of an item only once it stayed open this long (internal audiences at once);
    # one resolved within it never reaches a customer
    hold: Duration = timedelta(minutes=5)


class ProductPriority(Strict):
    """When one theme recurs across enough tenants or ARR, the product channel hears of it."""

    min_tenants: Annotated[int, Field(ge=1)] = 3
    min_arr: Annotated[int, Field(ge=0)] | None = None
    window: Duration = timedelta(days=30)
    channel: str = "product"
