"""The core the tests build runs THE table, the one bot/bootstrap.py builds the product with."""

from __future__ import annotations

from opsloop.core import Core
from opsloop.table import handler_table, timer_table


def test_the_core_under_test_runs_the_one_table(services: Core) -> None:
    table = services.bus.table.describe()
    assert table == handler_table(services).describe()
    assert table["ItemCreated"][0] == "DedicatedChannels.on_created"  # the table, not an empty one
    assert set(services.sweeper.handlers) == set(timer_table(services))
