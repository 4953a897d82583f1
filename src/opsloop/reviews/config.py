"""The `reviews` section of the policy file (owned here; `opsloop.policy` imports it).

Due dates of reviews and follow-ups are kept on a calendar of `sla.calendars`: a whole number of
days counts working days (`5d`: the end of the fifth working day from now), hours and minutes
count working time (`4h`), as the SLA clocks do.
"""

from __future__ import annotations

from datetime import timedelta

from opsloop.fields import Duration, Strict
from opsloop.types import Severity


class ReviewsPolicy(Strict):
    # an item of these severities drafts its review by itself when it is resolved
    required_for: list[Severity] = [Severity.SEV1, Severity.SEV2]
    due: Duration = timedelta(days=5)  # a review is due this long after it was drafted (5d: 5 working days)
    calendar: str = "business"  # a name under sla.calendars, or 24x7 (an undefined default counts 24x7)
    followup_due: Duration = timedelta(days=14)  # a follow-up without `due:` is due this long after
    remind_before: Duration = timedelta(days=1)  # the owner hears "due soon" this long before
    remind_every: Duration = timedelta(days=1)  # and again this often while it is overdue
