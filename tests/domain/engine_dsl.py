"""Small builders so engine scenarios read as given / when / then with exact events.

The test instrument "T" has tick size 1 and lot size 1, so prices and quantities in the
scenarios are the integers the engine sees. Time is 0 unless a scenario advances it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from domain.commands import PlaceOrder
from domain.engine import MatchingEngine
from domain.events import (
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    TradeExecuted,
)
from domain.instruments import Instrument
from domain.orders import OrderType, SelfTradePrevention, Side, TimeInForce

SYMBOL = "T"
INSTRUMENT = Instrument(SYMBOL, Decimal("1"), Decimal("1"))
BUY = Side.BUY
SELL = Side.SELL


def new_engine(min_quantity: str | None = None) -> MatchingEngine:
    if min_quantity is None:
        return MatchingEngine([INSTRUMENT])
    return MatchingEngine([Instrument(SYMBOL, Decimal("1"), Decimal("1"), Decimal(min_quantity))])


def limit(
    order_id: str, side: Side, quantity: int, price: int, user: str = "u1", **options: Any
) -> PlaceOrder:
    return PlaceOrder(order_id, user, SYMBOL, side, OrderType.LIMIT, quantity, price, **options)


def market(
    order_id: str, side: Side, quantity: int, user: str = "u1", **options: Any
) -> PlaceOrder:
    return PlaceOrder(order_id, user, SYMBOL, side, OrderType.MARKET, quantity, **options)


def stop_limit(
    order_id: str,
    side: Side,
    quantity: int,
    price: int,
    stop_price: int,
    user: str = "u1",
    **options: Any,
) -> PlaceOrder:
    return PlaceOrder(
        order_id,
        user,
        SYMBOL,
        side,
        OrderType.STOP_LIMIT,
        quantity,
        price,
        stop_price=stop_price,
        **options,
    )


def stop_market(
    order_id: str, side: Side, quantity: int, stop_price: int, user: str = "u1", **options: Any
) -> PlaceOrder:
    return PlaceOrder(
        order_id,
        user,
        SYMBOL,
        side,
        OrderType.STOP_MARKET,
        quantity,
        stop_price=stop_price,
        **options,
    )


def accepted(command: PlaceOrder, at: int = 0) -> OrderAccepted:
    return OrderAccepted(
        command.order_id,
        command.user_id,
        command.instrument,
        command.side,
        command.order_type,
        command.price,
        command.quantity,
        command.time_in_force,
        command.post_only,
        command.stp,
        command.expire_time,
        command.max_slippage_bps,
        command.stop_price,
        at,
    )


def trade(
    number: int,
    price: int,
    quantity: int,
    maker: PlaceOrder,
    taker: PlaceOrder,
    at: int = 0,
) -> TradeExecuted:
    return TradeExecuted(
        f"{SYMBOL}-{number}",
        SYMBOL,
        price,
        quantity,
        maker.order_id,
        taker.order_id,
        taker.side,
        maker.user_id,
        taker.user_id,
        at,
    )


def partial(
    order_id: str, number: int, price: int, quantity: int, filled: int, remaining: int, at: int = 0
) -> OrderPartiallyFilled:
    return OrderPartiallyFilled(
        order_id, SYMBOL, f"{SYMBOL}-{number}", price, quantity, filled, remaining, at
    )


def filled(
    order_id: str, number: int, price: int, quantity: int, total: int, at: int = 0
) -> OrderFilled:
    return OrderFilled(order_id, SYMBOL, f"{SYMBOL}-{number}", price, quantity, total, 0, at)


def cancelled(
    order_id: str, reason: str, quantity: int, filled_quantity: int = 0, at: int = 0
) -> OrderCancelled:
    return OrderCancelled(order_id, SYMBOL, reason, quantity, filled_quantity, at)


def given(engine: MatchingEngine, *commands: Any) -> MatchingEngine:
    """Feed set-up commands; each must be accepted (not rejected)."""
    for command in commands:
        events = engine.handle(command)
        assert events, command
        assert type(events[0]).__name__ != "OrderRejected", events
    return engine


def trades_of(events: list[Event]) -> list[tuple[str, str, int, int]]:
    """(maker, taker, price, quantity) of every trade, in order."""
    return [
        (e.maker_order_id, e.taker_order_id, e.price, e.quantity)
        for e in events
        if isinstance(e, TradeExecuted)
    ]


def type_names(events: list[Event]) -> list[str]:
    return [type(event).__name__ for event in events]


__all__ = [
    "BUY",
    "INSTRUMENT",
    "SELL",
    "SYMBOL",
    "SelfTradePrevention",
    "TimeInForce",
]
