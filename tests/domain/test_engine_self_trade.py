"""Scenarios: self-trade prevention, judged on the incoming order's `stp`."""

from __future__ import annotations

from engine_dsl import (
    BUY,
    SELL,
    SelfTradePrevention,
    TimeInForce,
    accepted,
    cancelled,
    filled,
    given,
    limit,
    new_engine,
    partial,
    trade,
)

from domain.orders import OrderStatus


def _book() -> tuple[object, ...]:
    other = limit("a1", SELL, 2, 100, user="other")
    mine = limit("a2", SELL, 2, 100, user="me")
    after = limit("a3", SELL, 2, 101, user="other")
    return other, mine, after


def test_cancel_newest_is_the_default_and_cancels_the_incoming_remainder() -> None:
    other, mine, after = _book()
    engine = given(new_engine(), other, mine, after)
    bid = limit("b1", BUY, 5, 101, user="me")

    assert engine.handle(bid) == [
        accepted(bid),
        trade(1, 100, 2, other, bid),  # type: ignore[arg-type]
        filled("a1", 1, 100, 2, 2),
        partial("b1", 1, 100, 2, 2, 3),
        cancelled("b1", "SELF_TRADE", 3, 2),
    ]
    assert engine.book_levels("T") == ([], [(100, 2, 1), (101, 2, 1)])
    assert engine.order_status("a2") is OrderStatus.OPEN


def test_cancel_oldest_cancels_the_resting_order_and_matching_goes_on() -> None:
    other, mine, after = _book()
    engine = given(new_engine(), other, mine, after)
    bid = limit("b1", BUY, 5, 101, user="me", stp=SelfTradePrevention.CANCEL_OLDEST)

    assert engine.handle(bid) == [
        accepted(bid),
        trade(1, 100, 2, other, bid),  # type: ignore[arg-type]
        filled("a1", 1, 100, 2, 2),
        partial("b1", 1, 100, 2, 2, 3),
        cancelled("a2", "SELF_TRADE", 2),
        trade(2, 101, 2, after, bid),  # type: ignore[arg-type]
        filled("a3", 2, 101, 2, 2),
        partial("b1", 2, 101, 2, 4, 1),
    ]
    assert engine.book_levels("T") == ([(101, 1, 1)], [])


def test_cancel_both_cancels_resting_and_incoming() -> None:
    other, mine, after = _book()
    engine = given(new_engine(), other, mine, after)
    bid = limit("b1", BUY, 5, 101, user="me", stp=SelfTradePrevention.CANCEL_BOTH)

    assert engine.handle(bid) == [
        accepted(bid),
        trade(1, 100, 2, other, bid),  # type: ignore[arg-type]
        filled("a1", 1, 100, 2, 2),
        partial("b1", 1, 100, 2, 2, 3),
        cancelled("a2", "SELF_TRADE", 2),
        cancelled("b1", "SELF_TRADE", 3, 2),
    ]
    assert engine.book_levels("T") == ([], [(101, 2, 1)])


def test_stp_none_allows_self_trades() -> None:
    other, mine, after = _book()
    engine = given(new_engine(), other, mine, after)
    bid = limit("b1", BUY, 4, 100, user="me", stp=SelfTradePrevention.NONE)

    events = engine.handle(bid)

    assert [
        (e.maker_order_id, e.maker_user_id, e.taker_user_id)
        for e in events
        if hasattr(e, "maker_order_id")
    ] == [
        ("a1", "other", "me"),
        ("a2", "me", "me"),
    ]


def test_fok_counts_only_what_stp_lets_it_take() -> None:
    other, mine, after = _book()
    engine = given(new_engine(), other, mine, after)
    newest = limit("b1", BUY, 4, 101, user="me", time_in_force=TimeInForce.FOK)
    oldest = limit(
        "b2",
        BUY,
        4,
        101,
        user="me",
        time_in_force=TimeInForce.FOK,
        stp=SelfTradePrevention.CANCEL_OLDEST,
    )

    assert engine.handle(newest) == [accepted(newest), cancelled("b1", "FOK_NOT_FILLABLE", 4)]
    events = engine.handle(oldest)
    assert [type(e).__name__ for e in events] == [
        "OrderAccepted",
        "TradeExecuted",
        "OrderFilled",
        "OrderPartiallyFilled",
        "OrderCancelled",
        "TradeExecuted",
        "OrderFilled",
        "OrderFilled",
    ]
