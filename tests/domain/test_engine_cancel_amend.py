"""Scenarios: cancel, and amend with FIX cancel/replace semantics."""

from __future__ import annotations

from engine_dsl import (
    BUY,
    INSTRUMENT,
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
    trades_of,
)

from domain.commands import AdvanceTime, AmendOrder, CancelOrder
from domain.engine import MatchingEngine
from domain.events import AmendRejected, CancelRejected, OrderAmended
from domain.orders import OrderStatus


def test_cancel_removes_the_order_and_reports_what_was_left() -> None:
    engine = given(new_engine(), limit("b1", BUY, 5, 100), market("m1", SELL, 2, user="x"))

    assert engine.handle(CancelOrder("b1")) == [cancelled("b1", "USER_REQUESTED", 3, 2)]
    assert engine.book_levels("T") == ([], [])
    assert engine.order_status("b1") is OrderStatus.CANCELLED


def test_cancel_of_an_unknown_or_closed_order_is_rejected() -> None:
    engine = given(new_engine(), limit("b1", BUY, 5, 100))
    engine.handle(CancelOrder("b1"))

    assert engine.handle(CancelOrder("b1")) == [CancelRejected("b1", None, "ORDER_CLOSED", 0)]
    assert engine.handle(CancelOrder("zz")) == [CancelRejected("zz", None, "UNKNOWN_ORDER", 0)]


def test_cancel_in_the_middle_of_a_level_keeps_the_others_in_order() -> None:
    engine = given(
        new_engine(),
        limit("a1", SELL, 1, 100, user="m"),
        limit("a2", SELL, 1, 100, user="m"),
        limit("a3", SELL, 1, 100, user="m"),
    )
    engine.handle(CancelOrder("a2"))

    events = engine.handle(limit("b1", BUY, 2, 100))

    assert trades_of(events) == [("a1", "b1", 100, 1), ("a3", "b1", 100, 1)]


def test_lowering_quantity_keeps_time_priority() -> None:
    engine = given(
        new_engine(),
        limit("a1", SELL, 5, 100, user="m1"),
        limit("a2", SELL, 5, 100, user="m2"),
    )

    assert engine.handle(AmendOrder("a1", quantity=3)) == [
        OrderAmended("a1", "T", 100, 3, 3, False, 0)
    ]
    assert engine.book_levels("T") == ([], [(100, 8, 2)])
    assert trades_of(engine.handle(limit("b1", BUY, 3, 100))) == [("a1", "b1", 100, 3)]


def test_raising_quantity_loses_time_priority() -> None:
    engine = given(
        new_engine(),
        limit("a1", SELL, 5, 100, user="m1"),
        limit("a2", SELL, 5, 100, user="m2"),
    )

    assert engine.handle(AmendOrder("a1", quantity=6)) == [
        OrderAmended("a1", "T", 100, 6, 6, True, 0)
    ]
    assert trades_of(engine.handle(limit("b1", BUY, 5, 100))) == [("a2", "b1", 100, 5)]


def test_quantity_is_the_new_total_including_what_was_filled() -> None:
    engine = given(new_engine(), limit("a1", SELL, 10, 100, user="m"), market("m1", BUY, 4))

    assert engine.handle(AmendOrder("a1", quantity=7)) == [
        OrderAmended("a1", "T", 100, 7, 3, False, 0)
    ]
    assert engine.book_levels("T") == ([], [(100, 3, 1)])


def test_new_total_at_or_below_filled_is_rejected() -> None:
    engine = given(new_engine(), limit("a1", SELL, 10, 100, user="m"), market("m1", BUY, 4))

    for quantity in (4, 3):
        assert engine.handle(AmendOrder("a1", quantity=quantity)) == [
            AmendRejected("a1", "T", "QUANTITY_AT_OR_BELOW_FILLED", 0)
        ]
    assert engine.book_levels("T") == ([], [(100, 6, 1)])


def test_price_change_loses_priority_and_may_match_at_once() -> None:
    ask = limit("a1", SELL, 3, 101, user="m")
    bid = limit("b1", BUY, 5, 99)
    engine = given(new_engine(), ask, bid, limit("b2", BUY, 1, 101 - 2, user="x"))

    assert engine.handle(AmendOrder("b1", price=101)) == [
        OrderAmended("b1", "T", 101, 5, 5, True, 0),
        trade(1, 101, 3, ask, bid),
        filled("a1", 1, 101, 3, 3),
        partial("b1", 1, 101, 3, 3, 2),
    ]
    assert engine.book_levels("T") == ([(101, 2, 1), (99, 1, 1)], [])


def test_price_change_back_goes_behind_orders_already_there() -> None:
    engine = given(
        new_engine(),
        limit("b1", BUY, 1, 99),
        limit("b2", BUY, 1, 99, user="x"),
    )
    engine.handle(AmendOrder("b1", price=98))
    engine.handle(AmendOrder("b1", price=99))

    assert trades_of(engine.handle(market("s", SELL, 2, user="y"))) == [
        ("b2", "s", 99, 1),
        ("b1", "s", 99, 1),
    ]


def test_post_only_amend_that_would_take_is_rejected_and_the_order_stays() -> None:
    engine = given(
        new_engine(),
        limit("a1", SELL, 3, 101, user="m"),
        limit("b1", BUY, 5, 99, post_only=True),
    )

    assert engine.handle(AmendOrder("b1", price=101)) == [
        AmendRejected("b1", "T", "POST_ONLY_WOULD_TAKE", 0)
    ]
    assert engine.book_levels("T") == ([(99, 5, 1)], [(101, 3, 1)])


def test_amend_rejections() -> None:
    engine = given(new_engine(min_quantity="2"), limit("b1", BUY, 5, 99))
    engine.handle(limit("b2", BUY, 5, 98))
    engine.handle(CancelOrder("b2"))

    assert engine.handle(AmendOrder("zz", quantity=1)) == [
        AmendRejected("zz", None, "UNKNOWN_ORDER", 0)
    ]
    assert engine.handle(AmendOrder("b2", quantity=3)) == [
        AmendRejected("b2", None, "ORDER_CLOSED", 0)
    ]
    assert engine.handle(AmendOrder("b1")) == [AmendRejected("b1", "T", "NOTHING_TO_AMEND", 0)]
    assert engine.handle(AmendOrder("b1", quantity=1)) == [
        AmendRejected("b1", "T", "BELOW_MIN_QUANTITY", 0)
    ]
    assert engine.handle(AmendOrder("b1", price=0)) == [
        AmendRejected("b1", "T", "INVALID_PRICE", 0)
    ]


def test_accepted_helper_matches_engine_output() -> None:
    order = limit("b1", BUY, 1, 1)
    assert new_engine().handle(order) == [accepted(order)]


def test_a_bounded_engine_forgets_the_oldest_closed_ids_when_the_clock_moves() -> None:
    engine = MatchingEngine([INSTRUMENT], closed_order_memory=2)
    for order_id in ("c1", "c2", "c3"):
        engine.handle(limit(order_id, BUY, 1, 100))
        engine.handle(CancelOrder(order_id))
    assert engine.handle(CancelOrder("c1")) == [CancelRejected("c1", None, "ORDER_CLOSED", 0)]

    engine.handle(AdvanceTime(1))

    assert engine.handle(CancelOrder("c1")) == [CancelRejected("c1", None, "UNKNOWN_ORDER", 1)]
    assert engine.handle(CancelOrder("c2")) == [CancelRejected("c2", None, "ORDER_CLOSED", 1)]
    restored = MatchingEngine.restore(engine.snapshot())
    assert restored.snapshot() == engine.snapshot()
