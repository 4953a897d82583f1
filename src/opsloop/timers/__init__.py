"""Durable timers as infrastructure: the table (`models`), the sweeper that fires each due timer
exactly once across replicas (`sweeper`), and the handler signature features register.
No feature depends on another to get a timer."""

from opsloop.timers.models import Timer
from opsloop.timers.sweeper import Sweeper, SweepStats, TimerHandler

__all__ = ["SweepStats", "Sweeper", "Timer", "TimerHandler"]
