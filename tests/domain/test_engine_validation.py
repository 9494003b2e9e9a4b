"""Scenarios: orders the engine refuses, each with its reason code; and statuses."""

from __future__ import annotations

from decimal import Decimal

import pytest
from engine_dsl import BUY, SELL, SYMBOL, TimeInForce, given, limit, market, new_engine

from domain.commands import AddInstrument, PlaceOrder
from domain.events import InstrumentAdded, InstrumentRejected, OrderRejected
from domain.instruments import Instrument
from domain.orders import OrderStatus, OrderType


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (PlaceOrder("o", "u1", "NOPE", BUY, OrderType.LIMIT, 1, 1), "UNKNOWN_INSTRUMENT"),
        (limit("o", BUY, 0, 100), "INVALID_QUANTITY"),
        (limit("o", BUY, 1, 100), "BELOW_MIN_QUANTITY"),
        (PlaceOrder("o", "u1", SYMBOL, BUY, OrderType.LIMIT, 5), "PRICE_REQUIRED"),
        (limit("o", BUY, 5, 0), "INVALID_PRICE"),
        (market("o", BUY, 5, price=100), "PRICE_NOT_ALLOWED"),
        (
            market("o", BUY, 5, time_in_force=TimeInForce.GTD, expire_time=9),
            "INVALID_TIME_IN_FORCE",
        ),
        (market("o", BUY, 5, post_only=True), "POST_ONLY_NOT_ALLOWED"),
        (market("o", BUY, 5, max_slippage_bps=-1), "INVALID_SLIPPAGE"),
        (limit("o", BUY, 5, 100, max_slippage_bps=10), "SLIPPAGE_NOT_ALLOWED"),
        (limit("o", BUY, 5, 100, stop_price=90), "STOP_PRICE_NOT_ALLOWED"),
        (PlaceOrder("o", "u1", SYMBOL, BUY, OrderType.STOP_MARKET, 5), "STOP_PRICE_REQUIRED"),
        (
            PlaceOrder("o", "u1", SYMBOL, BUY, OrderType.STOP_MARKET, 5, stop_price=0),
            "INVALID_STOP_PRICE",
        ),
        (
            PlaceOrder(
                "o", "u1", SYMBOL, BUY, OrderType.STOP_LIMIT, 5, 10, stop_price=9, post_only=True
            ),
            "POST_ONLY_NOT_ALLOWED",
        ),
        (limit("o", BUY, 5, 100, time_in_force=TimeInForce.GTD), "EXPIRE_TIME_REQUIRED"),
        (limit("o", BUY, 5, 100, expire_time=10), "EXPIRE_TIME_NOT_ALLOWED"),
    ],
)
def test_rejections_carry_a_reason_and_never_raise(command: PlaceOrder, reason: str) -> None:
    engine = new_engine(min_quantity="2")

    assert engine.handle(command) == [OrderRejected("o", "u1", command.instrument, reason, 0)]
    assert engine.order_status("o") is OrderStatus.REJECTED
    assert engine.book_levels(SYMBOL) == ([], [])


def test_a_duplicate_order_id_is_rejected_and_the_first_order_is_untouched() -> None:
    engine = given(new_engine(), limit("o", BUY, 5, 100))

    assert engine.handle(limit("o", SELL, 5, 200)) == [
        OrderRejected("o", "u1", SYMBOL, "DUPLICATE_ORDER_ID", 0)
    ]
    assert engine.order_status("o") is OrderStatus.OPEN
    assert engine.book_levels(SYMBOL) == ([(100, 5, 1)], [])


def test_min_quantity_accepts_exactly_the_minimum() -> None:
    engine = new_engine(min_quantity="2")

    assert type(engine.handle(limit("o", BUY, 2, 100))[0]).__name__ == "OrderAccepted"


def test_instruments_can_be_added_once() -> None:
    engine = new_engine()
    other = Instrument("U", Decimal("0.5"), Decimal("0.1"))

    assert engine.handle(AddInstrument(other)) == [
        InstrumentAdded("U", Decimal("0.5"), Decimal("0.1"), None)
    ]
    assert engine.handle(AddInstrument(other)) == []
    assert engine.handle(AddInstrument(Instrument("U", Decimal("1"), Decimal("1")))) == [
        InstrumentRejected("U", "INSTRUMENT_EXISTS")
    ]


def test_statuses_through_an_orders_life() -> None:
    engine = new_engine()
    assert engine.order_status("a") is None
    engine.handle(limit("a", SELL, 4, 100, user="m"))
    assert engine.order_status("a") is OrderStatus.OPEN
    engine.handle(market("b", BUY, 1))
    assert engine.order_status("a") is OrderStatus.PARTIALLY_FILLED
    engine.handle(market("c", BUY, 3))
    assert engine.order_status("a") is OrderStatus.FILLED
