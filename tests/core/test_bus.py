"""The bus follows its table: the row's handlers in order, in the publisher's transaction."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from opsloop.bus import Bus, HandlerTable, on
from opsloop.db import Database
from opsloop.errors import InvalidInput
from opsloop.events import Event, event
from opsloop.models import Counter, WorkItem
from tests.support import FakeClock


@event
class Rang(Event):
    name: str


ITEM = WorkItem(ref="INC-1", kind="incident", number=1, title="Bell rang", severity="sev3", state="triggered",
                created_by="U1")


def rang(clock: FakeClock, name: str) -> Rang:
    return Rang(at=clock.now(), item=ITEM, name=name)


@event
class Echoed(Event):
    name: str


class Bell:
    """Handlers that write down what they heard, in one shared list."""

    def __init__(self, bus: Bus, heard: list[str]) -> None:
        self.bus = bus
        self.heard = heard

    def first(self, session: Session, event: Rang) -> None:
        self.heard.append(f"first:{event.name}")
        self.bus.publish(session, Echoed(at=event.at, item=event.item, name=event.name))  # heard after Rang's row

    def second(self, session: Session, event: Rang) -> None:
        self.heard.append(f"second:{event.name}")

    def echo(self, session: Session, event: Echoed) -> None:
        self.heard.append(f"echo:{event.name}")

    def count(self, session: Session, event: Rang) -> None:
        session.add(Counter(name=f"rang:{event.name}", value=1))

    def refuse(self, session: Session, event: Rang) -> None:
        raise InvalidInput(f"not {event.name}")


def bus_with(*rows: str, heard: list[str]) -> tuple[Bus, Bell]:
    bus = Bus()
    bell = Bell(bus, heard)
    handlers = {"first": bell.first, "second": bell.second, "count": bell.count, "refuse": bell.refuse}
    bus.use(HandlerTable(on(Rang, *(handlers[name] for name in rows)), on(Echoed, bell.echo)))
    return bus, bell


def test_a_row_is_heard_in_order_and_what_a_handler_publishes_after_it(db: Database, clock: FakeClock) -> None:
    heard: list[str] = []
    bus, _ = bus_with("first", "second", heard=heard)
    with db.transaction() as session:
        bus.publish(session, rang(clock, "a"))
        assert heard == ["first:a", "second:a", "echo:a"]  # all of it before publish returns
        bus.publish(session, rang(clock, "b"))
    assert heard == ["first:a", "second:a", "echo:a", "first:b", "second:b", "echo:b"]


def test_handlers_work_in_the_publishers_transaction_and_a_refusal_undoes_it(
    db: Database, clock: FakeClock
) -> None:
    bus, _ = bus_with("count", "refuse", heard=[])
    with pytest.raises(InvalidInput, match="not late"), db.transaction() as session:
        bus.publish(session, rang(clock, "late"))
    with db.transaction() as session:
        assert session.exec(select(Counter).where(Counter.name == "rang:late")).first() is None
    counting, _ = bus_with("count", heard=[])
    with db.transaction() as session:
        counting.publish(session, rang(clock, "kept"))
    with db.transaction() as session:
        assert session.exec(select(Counter.value).where(Counter.name == "rang:kept")).one() == 1


def test_an_event_nobody_hears_is_fine_and_a_table_has_one_row_per_event(db: Database, clock: FakeClock) -> None:
    with db.transaction() as session:
        Bus(HandlerTable()).publish(session, rang(clock, "unheard"))
    bell = Bell(Bus(), [])
    with pytest.raises(ValueError, match="Rang has two rows"):
        HandlerTable(on(Rang, bell.first), on(Rang, bell.second))
    bus = Bus()
    bus.use(HandlerTable(on(Rang, bell.first)))
    with pytest.raises(RuntimeError, match="already has its table"):
        bus.use(HandlerTable())
    assert bus.table.describe() == {"Rang": ["Bell.first"]}
