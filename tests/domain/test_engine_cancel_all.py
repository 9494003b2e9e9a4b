"""Scenarios: CancelAllOrders, a user's kill switch."""

from __future__ import annotations

from decimal import Decimal

import pytest
from engine_dsl import (
    BUY,
    INSTRUMENT,
    SELL,
    cancelled,
    given,
    limit,
    market,
    new_engine,
    stop_limit,
    trades_of,
)

from domain.codec import command_from_dict, command_to_dict
from domain.commands import AdvanceTime, CancelAllOrders, PlaceOrder
from domain.engine import MatchingEngine
from domain.errors import InvalidField
from domain.events import OrderCancelled
from domain.instruments import Instrument
from domain.orders import OrderStatus, OrderType


def test_cancels_every_open_order_and_waiting_stop_of_the_user_oldest_first() -> None:
    engine = given(
        new_engine(),
        limit("b2", BUY, 4, 99),
        limit("a1", SELL, 5, 105),
        stop_limit("s1", BUY, 2, 110, 108),
        limit("other", BUY, 3, 99, user="u2"),
        market("m1", SELL, 1, user="u3"),  # fills 1 of b2
    )
    engine.handle(AdvanceTime(7))

    events = engine.handle(CancelAllOrders("u1"))

    assert events == [
        cancelled("b2", "MASS_CANCEL", 3, 1, at=7),
        cancelled("a1", "MASS_CANCEL", 5, 0, at=7),
        cancelled("s1", "MASS_CANCEL", 2, 0, at=7),
    ]
    assert engine.book_levels("T") == ([(99, 3, 1)], [])
    assert engine.order_status("b2") is OrderStatus.CANCELLED
    assert engine.order_status("s1") is OrderStatus.CANCELLED
    assert engine.order_status("other") is OrderStatus.OPEN
    # Nothing of u1's is left to trade with: a sell at 99 meets only u2's bid.
    assert trades_of(engine.handle(limit("x1", SELL, 9, 99, user="u4"))) == [("other", "x1", 99, 3)]


def test_with_nothing_open_it_emits_nothing_and_cancels_nothing_of_others() -> None:
    engine = given(new_engine(), limit("b1", BUY, 4, 99, user="u2"))

    assert engine.handle(CancelAllOrders("u1")) == []
    assert engine.book_levels("T") == ([(99, 4, 1)], [])


def two_instrument_engine() -> MatchingEngine:
    other = Instrument("U", Decimal("1"), Decimal("1"))
    return MatchingEngine([INSTRUMENT, other])


def test_an_instrument_limits_it_to_that_book() -> None:
    engine = two_instrument_engine()
    engine.handle(limit("t1", BUY, 1, 99))
    engine.handle(PlaceOrder("u1", "u1", "U", BUY, OrderType.LIMIT, 2, 50))

    events = engine.handle(CancelAllOrders("u1", "U"))

    assert events == [OrderCancelled("u1", "U", "MASS_CANCEL", 2, 0, 0)]
    assert engine.order_status("t1") is OrderStatus.OPEN
    assert engine.book_levels("U") == ([], [])


def test_a_snapshot_after_a_cancel_all_restores_the_same_book() -> None:
    engine = new_engine()
    for command in (
        limit("b1", BUY, 4, 99),
        limit("b2", BUY, 4, 98, user="u2"),
        stop_limit("s1", SELL, 2, 90, 91),
        CancelAllOrders("u1"),
    ):
        engine.handle(command)

    restored = MatchingEngine.restore(engine.snapshot())

    assert restored.book_levels("T") == engine.book_levels("T") == ([(98, 4, 1)], [])
    assert restored.order_status("s1") is OrderStatus.CANCELLED
    assert restored.handle(CancelAllOrders("u1")) == []
    assert restored.handle(CancelAllOrders("u2")) == engine.handle(CancelAllOrders("u2"))


def test_the_command_round_trips_through_its_json_dict() -> None:
    instruments = {"T": INSTRUMENT}
    for command in (CancelAllOrders("u1"), CancelAllOrders("u1", "T")):
        data = command_to_dict(command, instruments)
        assert command_from_dict(data, instruments) == command
    assert command_to_dict(CancelAllOrders("u1", "T"), instruments) == {
        "op": "cancel_all",
        "user_id": "u1",
        "instrument": "T",
    }


def test_a_bad_dict_is_refused_with_the_field() -> None:
    instruments = {"T": INSTRUMENT}
    for data, field, reason in (
        ({"op": "cancel_all"}, "user_id", "REQUIRED"),
        (
            {"op": "cancel_all", "user_id": "u1", "instrument": "ZZ"},
            "instrument",
            "UNKNOWN_INSTRUMENT",
        ),
    ):
        with pytest.raises(InvalidField) as raised:
            command_from_dict(data, instruments)
        assert (raised.value.field, raised.value.reason) == (field, reason)
