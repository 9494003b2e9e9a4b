"""Scenarios: STOP_LIMIT / STOP_MARKET triggered by the last trade price."""

from __future__ import annotations

from engine_dsl import (
    BUY,
    SELL,
    TimeInForce,
    accepted,
    cancelled,
    given,
    limit,
    market,
    new_engine,
    stop_limit,
    stop_market,
    trades_of,
    type_names,
)

from domain.commands import AdvanceTime, AmendOrder, CancelOrder
from domain.engine import MatchingEngine
from domain.events import OrderExpired, OrderRejected, StopTriggered
from domain.orders import OrderStatus


def _with_last_price(price: int) -> MatchingEngine:
    return given(
        new_engine(), limit("seed-a", SELL, 1, price, user="m"), market("seed-b", BUY, 1, user="m2")
    )


def test_a_stop_waits_without_touching_the_book() -> None:
    engine = _with_last_price(100)
    stop = stop_limit("st", BUY, 2, 106, 105)

    assert engine.handle(stop) == [accepted(stop)]
    assert engine.book_levels("T") == ([], [])
    assert engine.order_status("st") is OrderStatus.TRIGGER_PENDING


def test_buy_stop_triggers_when_last_reaches_the_stop_and_then_matches() -> None:
    engine = _with_last_price(100)
    engine.handle(stop_limit("st", BUY, 2, 106, 105))
    engine.handle(limit("a1", SELL, 1, 105, user="m"))
    engine.handle(limit("a2", SELL, 5, 106, user="m"))

    events = engine.handle(limit("b1", BUY, 1, 105, user="x"))

    assert type_names(events) == [
        "OrderAccepted",
        "TradeExecuted",
        "OrderFilled",
        "OrderFilled",
        "StopTriggered",
        "TradeExecuted",
        "OrderPartiallyFilled",
        "OrderFilled",
    ]
    assert events[4] == StopTriggered("st", "T", 105, 105, 0)
    assert trades_of(events) == [("a1", "b1", 105, 1), ("a2", "st", 106, 2)]
    assert engine.order_status("st") is OrderStatus.FILLED


def test_sell_stop_triggers_when_last_falls_to_the_stop_and_rests_its_remainder() -> None:
    engine = _with_last_price(100)
    engine.handle(stop_limit("st", SELL, 3, 94, 95))
    engine.handle(limit("b1", BUY, 1, 95, user="m"))

    events = engine.handle(market("s1", SELL, 1, user="x"))

    assert events[-1] == StopTriggered("st", "T", 95, 95, 0)
    assert engine.book_levels("T") == ([], [(94, 3, 1)])
    assert engine.order_status("st") is OrderStatus.TRIGGERED


def test_a_stop_whose_condition_already_holds_is_rejected() -> None:
    engine = _with_last_price(100)

    for order_id, side, stop in (
        ("s1", BUY, 100),
        ("s2", BUY, 99),
        ("s3", SELL, 100),
        ("s4", SELL, 101),
    ):
        assert engine.handle(stop_market(order_id, side, 1, stop)) == [
            OrderRejected(order_id, "u1", "T", "STOP_WOULD_TRIGGER_IMMEDIATELY", 0)
        ]


def test_without_any_trade_yet_a_stop_waits() -> None:
    engine = new_engine()
    stop = stop_market("st", BUY, 1, 1)

    assert engine.handle(stop) == [accepted(stop)]


def test_triggered_stops_cascade_oldest_qualifying_first() -> None:
    engine = _with_last_price(95)
    given(
        engine,
        limit("a1", SELL, 1, 100, user="m"),
        limit("a2", SELL, 1, 105, user="m"),
        limit("a3", SELL, 1, 110, user="m"),
        stop_market("st1", BUY, 1, 100, user="s1"),
        stop_market("st2", BUY, 1, 105, user="s2"),
        stop_market("st3", BUY, 1, 100, user="s3"),
    )

    events = engine.handle(limit("b1", BUY, 1, 100, user="x"))

    assert [e.order_id for e in events if isinstance(e, StopTriggered)] == ["st1", "st2", "st3"]
    assert trades_of(events) == [
        ("a1", "b1", 100, 1),
        ("a2", "st1", 105, 1),
        ("a3", "st2", 110, 1),
    ]
    assert events[-1] == cancelled("st3", "NO_LIQUIDITY", 1)


def test_a_waiting_stop_can_be_cancelled_and_can_expire() -> None:
    engine = _with_last_price(100)
    engine.handle(stop_market("st1", BUY, 1, 110))
    engine.handle(stop_limit("st2", BUY, 1, 111, 110, time_in_force=TimeInForce.GTD, expire_time=5))

    assert engine.handle(CancelOrder("st1")) == [cancelled("st1", "USER_REQUESTED", 1)]
    assert engine.handle(AdvanceTime(5))[1:] == [OrderExpired("st2", "T", 1, 0, 5)]
    engine.handle(limit("a1", SELL, 1, 110, user="m"))
    assert type_names(engine.handle(limit("b1", BUY, 1, 110, user="x"))) == [
        "OrderAccepted",
        "TradeExecuted",
        "OrderFilled",
        "OrderFilled",
    ]


def test_an_amend_that_trades_triggers_waiting_stops() -> None:
    engine = _with_last_price(100)
    given(
        engine,
        stop_market("st", SELL, 1, 98, user="s"),
        limit("b1", BUY, 1, 98, user="m"),
        limit("b2", BUY, 1, 97, user="m2"),
        limit("a1", SELL, 1, 101, user="x"),
    )

    events = engine.handle(AmendOrder("a1", price=98))

    assert type_names(events) == [
        "OrderAmended",
        "TradeExecuted",
        "OrderFilled",
        "OrderFilled",
        "StopTriggered",
        "TradeExecuted",
        "OrderFilled",
        "OrderFilled",
    ]
    assert trades_of(events) == [("b1", "a1", 98, 1), ("b2", "st", 97, 1)]


def test_a_triggered_stop_market_measures_slippage_from_the_book_at_trigger_time() -> None:
    engine = _with_last_price(100)
    given(
        engine,
        stop_market("st", BUY, 3, 102, user="s", max_slippage_bps=100),
        limit("a1", SELL, 1, 102, user="m"),
        limit("a2", SELL, 1, 103, user="m"),
        limit("a3", SELL, 1, 104, user="m"),
    )

    events = engine.handle(limit("b1", BUY, 1, 102, user="x"))

    # best ask at trigger is 103; +100 bps allows up to floor(104.03) = 104
    assert trades_of(events)[1:] == [("a2", "st", 103, 1), ("a3", "st", 104, 1)]
    assert events[-1] == cancelled("st", "NO_LIQUIDITY", 1, 2)
