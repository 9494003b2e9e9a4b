"""Scenarios: IOC, FOK, GTD with expiry, post-only."""

from __future__ import annotations

from engine_dsl import (
    BUY,
    SELL,
    TimeInForce,
    accepted,
    cancelled,
    filled,
    given,
    limit,
    market,
    new_engine,
    partial,
    trade,
)

from domain.commands import AdvanceTime
from domain.events import ClockAdvanced, OrderExpired, OrderRejected
from domain.orders import OrderStatus

IOC = TimeInForce.IOC
FOK = TimeInForce.FOK
GTD = TimeInForce.GTD
S = 1_000_000_000  # one second in ns


def test_ioc_fills_what_it_can_and_cancels_the_rest() -> None:
    a1 = limit("a1", SELL, 3, 100, user="m")
    engine = given(new_engine(), a1)
    bid = limit("b1", BUY, 5, 100, time_in_force=IOC)

    assert engine.handle(bid) == [
        accepted(bid),
        trade(1, 100, 3, a1, bid),
        filled("a1", 1, 100, 3, 3),
        partial("b1", 1, 100, 3, 3, 2),
        cancelled("b1", "IOC_REMAINDER", 2, 3),
    ]
    assert engine.book_levels("T") == ([], [])


def test_ioc_with_nothing_to_match_is_cancelled_whole() -> None:
    engine = new_engine()
    bid = limit("b1", BUY, 5, 100, time_in_force=IOC)

    assert engine.handle(bid) == [accepted(bid), cancelled("b1", "IOC_REMAINDER", 5)]


def test_fok_that_cannot_fill_entirely_trades_nothing() -> None:
    engine = given(
        new_engine(), limit("a1", SELL, 3, 100, user="m"), limit("a2", SELL, 3, 102, user="m")
    )
    bid = limit("b1", BUY, 5, 101, time_in_force=FOK)

    assert engine.handle(bid) == [accepted(bid), cancelled("b1", "FOK_NOT_FILLABLE", 5)]
    assert engine.book_levels("T") == ([], [(100, 3, 1), (102, 3, 1)])


def test_fok_that_can_fill_entirely_fills_across_levels() -> None:
    a1 = limit("a1", SELL, 3, 100, user="m")
    a2 = limit("a2", SELL, 3, 101, user="m")
    engine = given(new_engine(), a1, a2)
    bid = limit("b1", BUY, 5, 101, time_in_force=FOK)

    assert engine.handle(bid) == [
        accepted(bid),
        trade(1, 100, 3, a1, bid),
        filled("a1", 1, 100, 3, 3),
        partial("b1", 1, 100, 3, 3, 2),
        trade(2, 101, 2, a2, bid),
        partial("a2", 2, 101, 2, 2, 1),
        filled("b1", 2, 101, 2, 5),
    ]


def test_fok_market_order_that_cannot_fill_trades_nothing() -> None:
    engine = given(new_engine(), limit("a1", SELL, 3, 100, user="m"))
    buy = market("m1", BUY, 4, time_in_force=FOK)

    assert engine.handle(buy) == [accepted(buy), cancelled("m1", "FOK_NOT_FILLABLE", 4)]


def test_gtd_order_rests_then_expires_when_engine_time_reaches_it() -> None:
    engine = new_engine()
    engine.handle(AdvanceTime(10 * S))
    bid = limit("b1", BUY, 5, 100, time_in_force=GTD, expire_time=20 * S)

    assert engine.handle(bid) == [accepted(bid, at=10 * S)]
    assert engine.handle(AdvanceTime(20 * S - 1)) == [ClockAdvanced(20 * S - 1)]
    assert engine.book_levels("T") == ([(100, 5, 1)], [])
    assert engine.handle(AdvanceTime(20 * S)) == [
        ClockAdvanced(20 * S),
        OrderExpired("b1", "T", 5, 0, 20 * S),
    ]
    assert engine.book_levels("T") == ([], [])
    assert engine.order_status("b1") is OrderStatus.EXPIRED


def test_several_gtd_orders_expire_in_expiry_then_arrival_order() -> None:
    engine = given(
        new_engine(),
        limit("b1", BUY, 1, 100, time_in_force=GTD, expire_time=3 * S),
        limit("b2", BUY, 1, 100, time_in_force=GTD, expire_time=2 * S),
        limit("b3", BUY, 1, 99, time_in_force=GTD, expire_time=2 * S),
        limit("b4", BUY, 1, 98),
    )

    assert engine.handle(AdvanceTime(5 * S)) == [
        ClockAdvanced(5 * S),
        OrderExpired("b2", "T", 1, 0, 5 * S),
        OrderExpired("b3", "T", 1, 0, 5 * S),
        OrderExpired("b1", "T", 1, 0, 5 * S),
    ]
    assert engine.book_levels("T") == ([(98, 1, 1)], [])


def test_a_partly_filled_gtd_order_expires_its_remainder() -> None:
    bid = limit("b1", BUY, 5, 100, time_in_force=GTD, expire_time=2 * S)
    engine = given(new_engine(), bid, market("m1", SELL, 2, user="x"))

    assert engine.handle(AdvanceTime(2 * S))[1] == OrderExpired("b1", "T", 3, 2, 2 * S)


def test_gtd_expire_time_at_or_before_now_is_rejected() -> None:
    engine = new_engine()
    engine.handle(AdvanceTime(10 * S))

    for expire in (10 * S, 9 * S):
        order_id = f"b{expire}"
        events = engine.handle(limit(order_id, BUY, 1, 100, time_in_force=GTD, expire_time=expire))
        assert events == [OrderRejected(order_id, "u1", "T", "EXPIRE_TIME_NOT_IN_FUTURE", 10 * S)]


def test_time_never_goes_back() -> None:
    engine = new_engine()
    engine.handle(AdvanceTime(10 * S))

    assert engine.handle(AdvanceTime(5 * S)) == []
    assert engine.handle(AdvanceTime(10 * S)) == []
    assert engine.now == 10 * S


def test_post_only_that_would_take_is_rejected() -> None:
    engine = given(new_engine(), limit("a1", SELL, 3, 100, user="m"))

    assert engine.handle(limit("b1", BUY, 1, 100, post_only=True)) == [
        OrderRejected("b1", "u1", "T", "POST_ONLY_WOULD_TAKE", 0)
    ]
    assert engine.book_levels("T") == ([], [(100, 3, 1)])


def test_post_only_that_does_not_cross_rests() -> None:
    engine = given(new_engine(), limit("a1", SELL, 3, 100, user="m"))
    bid = limit("b1", BUY, 1, 99, post_only=True)

    assert engine.handle(bid) == [accepted(bid)]
    assert engine.book_levels("T") == ([(99, 1, 1)], [(100, 3, 1)])


def test_post_only_with_ioc_is_rejected() -> None:
    events = new_engine().handle(limit("b1", BUY, 1, 99, post_only=True, time_in_force=IOC))

    assert events == [OrderRejected("b1", "u1", "T", "POST_ONLY_NOT_ALLOWED", 0)]
