"""The leadership digest's part of the policy (`digest:`)."""

from __future__ import annotations

from datetime import time

from opsloop.fields import ClockTime, Days, Strict, parse_days


class Digest(Strict):
    at: ClockTime = time(8, 0)
    days: Days = parse_days("mon-fri")
    channel: str = "leadership"
