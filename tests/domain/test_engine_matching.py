"""Scenarios: limit and market matching, price-time priority, maker price, partial fills."""

from __future__ import annotations

from engine_dsl import (
    BUY,
    SELL,
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

from domain.orders import OrderStatus


def test_a_limit_order_that_does_not_cross_rests_on_the_book() -> None:
    engine = new_engine()
    order = limit("b1", BUY, 10, 100)

    assert engine.handle(order) == [accepted(order)]
    assert engine.book_levels("T") == ([(100, 10, 1)], [])
    assert engine.order_status("b1") is OrderStatus.OPEN


def test_a_crossing_limit_order_trades_at_the_makers_price_and_rests_its_remainder() -> None:
    ask = limit("a1", SELL, 4, 101, user="maker")
    engine = given(new_engine(), ask)
    bid = limit("b1", BUY, 10, 105, user="taker")

    assert engine.handle(bid) == [
        accepted(bid),
        trade(1, 101, 4, ask, bid),
        filled("a1", 1, 101, 4, 4),
        partial("b1", 1, 101, 4, 4, 6),
    ]
    assert engine.book_levels("T") == ([(105, 6, 1)], [])
    assert engine.order_status("a1") is OrderStatus.FILLED
    assert engine.order_status("b1") is OrderStatus.PARTIALLY_FILLED


def test_price_priority_then_time_priority() -> None:
    a_late_cheap = limit("a1", SELL, 5, 100, user="m1")
    a_expensive = limit("a2", SELL, 5, 102, user="m2")
    a_early_cheap_second = limit("a3", SELL, 5, 100, user="m3")
    engine = given(new_engine(), a_late_cheap, a_expensive, a_early_cheap_second)
    bid = limit("b1", BUY, 12, 102, user="t")

    assert engine.handle(bid) == [
        accepted(bid),
        trade(1, 100, 5, a_late_cheap, bid),
        filled("a1", 1, 100, 5, 5),
        partial("b1", 1, 100, 5, 5, 7),
        trade(2, 100, 5, a_early_cheap_second, bid),
        filled("a3", 2, 100, 5, 5),
        partial("b1", 2, 100, 5, 10, 2),
        trade(3, 102, 2, a_expensive, bid),
        partial("a2", 3, 102, 2, 2, 3),
        filled("b1", 3, 102, 2, 12),
    ]
    assert engine.book_levels("T") == ([], [(102, 3, 1)])


def test_a_sell_taker_walks_bids_from_the_highest() -> None:
    b_low = limit("b1", BUY, 3, 98, user="m1")
    b_high = limit("b2", BUY, 3, 99, user="m2")
    engine = given(new_engine(), b_low, b_high)
    ask = limit("a1", SELL, 5, 97, user="t")

    assert engine.handle(ask) == [
        accepted(ask),
        trade(1, 99, 3, b_high, ask),
        filled("b2", 1, 99, 3, 3),
        partial("a1", 1, 99, 3, 3, 2),
        trade(2, 98, 2, b_low, ask),
        partial("b1", 2, 98, 2, 2, 1),
        filled("a1", 2, 98, 2, 5),
    ]
    assert engine.book_levels("T") == ([(98, 1, 1)], [])


def test_a_limit_order_does_not_trade_beyond_its_price() -> None:
    engine = given(new_engine(), limit("a1", SELL, 5, 103, user="m"))
    bid = limit("b1", BUY, 5, 102)

    assert engine.handle(bid) == [accepted(bid)]
    assert engine.book_levels("T") == ([(102, 5, 1)], [(103, 5, 1)])


def test_a_market_order_takes_the_best_prices_and_never_rests() -> None:
    a1 = limit("a1", SELL, 2, 100, user="m")
    a2 = limit("a2", SELL, 2, 110, user="m")
    engine = given(new_engine(), a1, a2)
    buy = market("m1", BUY, 3)

    assert engine.handle(buy) == [
        accepted(buy),
        trade(1, 100, 2, a1, buy),
        filled("a1", 1, 100, 2, 2),
        partial("m1", 1, 100, 2, 2, 1),
        trade(2, 110, 1, a2, buy),
        partial("a2", 2, 110, 1, 1, 1),
        filled("m1", 2, 110, 1, 3),
    ]
    assert engine.last_price("T") == 110


def test_a_market_order_with_nothing_to_match_is_cancelled_no_liquidity() -> None:
    engine = new_engine()
    buy = market("m1", BUY, 3)

    assert engine.handle(buy) == [accepted(buy), cancelled("m1", "NO_LIQUIDITY", 3)]
    assert engine.order_status("m1") is OrderStatus.CANCELLED


def test_a_market_order_that_exhausts_the_book_cancels_the_rest_no_liquidity() -> None:
    a1 = limit("a1", SELL, 2, 100, user="m")
    engine = given(new_engine(), a1)
    buy = market("m1", BUY, 5)

    assert engine.handle(buy) == [
        accepted(buy),
        trade(1, 100, 2, a1, buy),
        filled("a1", 1, 100, 2, 2),
        partial("m1", 1, 100, 2, 2, 3),
        cancelled("m1", "NO_LIQUIDITY", 3, 2),
    ]
    assert engine.book_levels("T") == ([], [])


def test_market_slippage_limits_prices_to_best_plus_bps_and_cancels_the_rest() -> None:
    # best ask 10000; 50 bps -> no worse than 10050
    a1 = limit("a1", SELL, 1, 10000, user="m")
    a2 = limit("a2", SELL, 1, 10050, user="m")
    a3 = limit("a3", SELL, 1, 10051, user="m")
    engine = given(new_engine(), a1, a2, a3)
    buy = market("m1", BUY, 3, max_slippage_bps=50)

    assert engine.handle(buy) == [
        accepted(buy),
        trade(1, 10000, 1, a1, buy),
        filled("a1", 1, 10000, 1, 1),
        partial("m1", 1, 10000, 1, 1, 2),
        trade(2, 10050, 1, a2, buy),
        filled("a2", 2, 10050, 1, 1),
        partial("m1", 2, 10050, 1, 2, 1),
        cancelled("m1", "SLIPPAGE", 1, 2),
    ]
    assert engine.book_levels("T") == ([], [(10051, 1, 1)])


def test_sell_market_slippage_rounds_the_floor_price_up() -> None:
    # best bid 10001; 50 bps below is 9950.995 -> no worse than 9951
    b1 = limit("b1", BUY, 1, 10001, user="m")
    b2 = limit("b2", BUY, 1, 9951, user="m")
    b3 = limit("b3", BUY, 1, 9950, user="m")
    engine = given(new_engine(), b1, b2, b3)
    sell = market("s1", SELL, 3, max_slippage_bps=50)

    events = engine.handle(sell)

    assert events[-1] == cancelled("s1", "SLIPPAGE", 1, 2)
    assert engine.book_levels("T") == ([(9950, 1, 1)], [])


def test_trade_ids_count_per_instrument_and_last_price_follows_trades() -> None:
    engine = given(
        new_engine(),
        limit("a1", SELL, 1, 100, user="m"),
        limit("a2", SELL, 1, 101, user="m"),
    )
    engine.handle(market("m1", BUY, 1))
    events = engine.handle(market("m2", BUY, 1))

    assert events[1].trade_id == "T-2"  # type: ignore[union-attr]
    assert engine.last_price("T") == 101
