"""The handler table and the bus that follows it, inside the publisher's transaction.

    table = HandlerTable(
        on(ItemCreated, runbooks.attach, sla.start_clocks, cards.post),
        on(ClockBreached, health.after_breach, sla_words.breached),
    )
    bus.use(table)
    bus.publish(session, ItemCreated(...))   # every handler of the row, in order, in `session`

A handler is `handler(session, event) -> None`; it works in the publisher's
transaction, so what it writes commits (or rolls back) with the change that
caused it. A handler may refuse the change by raising a `DomainError`: the
whole transaction is undone.

Order: the handlers of one event run in the order of its row. An event
published *by a handler* (a runbook attached while an item is created) is
heard once the current event's row is done, in publishing order: so the
item's card, posted by a later handler of `ItemCreated`, is queued before the
checklist that `RunAttached` threads under it. An event published outside any
handler is heard before `publish` returns.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from sqlmodel import Session

from opsloop.events import Event

E = TypeVar("E", bound=Event)
Handler = Callable[[Session, E], None]


@dataclass(frozen=True)
class Row(Generic[E]):
    """One row of the table: an event type and who hears it, in order."""

    event: type[E]
    handlers: tuple[Handler[E], ...]


def on(event: type[E], *handlers: Handler[E]) -> Row[E]:
    """A row of the table (mypy checks that each handler takes this event)."""
    return Row(event, handlers)


class HandlerTable:
    """Event type -> its handlers, in order. Built once; one row per event type."""

    def __init__(self, *rows: Row[Any]) -> None:
        table: dict[type[Event], tuple[Handler[Any], ...]] = {}
        for row in rows:
            if row.event in table:
                raise ValueError(f"{row.event.__name__} has two rows; give it one")
            table[row.event] = row.handlers
        self._rows = MappingProxyType(table)

    def handlers(self, event: type[Event]) -> tuple[Handler[Any], ...]:
        return self._rows.get(event, ())

    def describe(self) -> dict[str, list[str]]:
        """`{"ItemCreated": ["Runbooks.attach", ...]}`: the table as a person reads it."""
        return {event.__name__: [_name(h) for h in handlers] for event, handlers in self._rows.items()}


def _name(handler: Callable[..., Any]) -> str:
    owner = getattr(handler, "__self__", None)
    prefix = f"{type(owner).__name__}." if owner is not None else ""
    return prefix + getattr(handler, "__name__", repr(handler))


class Bus:
    """Publishes events to the rows of its table. Shared by every thread; the queue of events
    waiting to be heard belongs to one session (one transaction)."""

    def __init__(self, table: HandlerTable | None = None) -> None:
        self._table = table or HandlerTable()
        self._installed = table is not None
        self._queues: dict[int, deque[Event]] = {}
        self._lock = threading.Lock()

    def use(self, table: HandlerTable) -> None:
        """Install the table; once (the table is the one place that says who hears what)."""
        if self._installed:
            raise RuntimeError("the bus already has its table")
        self._table, self._installed = table, True

    @property
    def table(self) -> HandlerTable:
        return self._table

    def publish(self, session: Session, event: Event) -> None:
        key = id(session)
        with self._lock:
            waiting = self._queues.get(key)
            if waiting is not None:  # a handler of this transaction published it: heard after its row
                waiting.append(event)
                return
            queue = self._queues[key] = deque([event])
        try:
            while queue:
                current = queue.popleft()
                for handler in self._table.handlers(type(current)):
                    handler(session, current)
        finally:
            with self._lock:
                del self._queues[key]
