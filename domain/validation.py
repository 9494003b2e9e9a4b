"""The checks that refuse a command: each returns the reason code (`domain.reasons`) an
order or amend is rejected with, or None when it may go ahead.

They read state and never change it. The engine's hot path checks the common orders (a
plain limit or market order) inline and calls `place_rejection` only when that quick check
does not pass, so this is where every reason is named.
"""

from __future__ import annotations

from typing import Final

from domain import reasons
from domain.book import OrderBook
from domain.commands import AmendOrder, PlaceOrder
from domain.engine_state import EngineState
from domain.orders import Order, OrderType, Side, TimeInForce

_BUY: Final = Side.BUY
_LIMIT: Final = OrderType.LIMIT
_MARKET: Final = OrderType.MARKET
_STOP_LIMIT: Final = OrderType.STOP_LIMIT
_STOP_MARKET: Final = OrderType.STOP_MARKET
_IOC: Final = TimeInForce.IOC
_FOK: Final = TimeInForce.FOK
_GTD: Final = TimeInForce.GTD


def place_rejection(state: EngineState, command: PlaceOrder, book: OrderBook) -> str | None:
    """The reason this order cannot be accepted, or None."""
    order_id = command.order_id
    if order_id in state.open_orders_by_id or order_id in state.closed_status_by_id:
        return reasons.DUPLICATE_ORDER_ID
    if state.not_trading and book.symbol in state.not_trading:
        return reasons.INSTRUMENT_HALTED
    quantity = command.quantity
    if quantity <= 0:
        return reasons.INVALID_QUANTITY
    if quantity < book.instrument.min_lots:
        return reasons.BELOW_MIN_QUANTITY
    order_type = command.order_type
    time_in_force = command.time_in_force
    is_stop = order_type is _STOP_LIMIT or order_type is _STOP_MARKET
    if order_type is _LIMIT or order_type is _STOP_LIMIT:
        if command.price is None:
            return reasons.PRICE_REQUIRED
        if command.price <= 0:
            return reasons.INVALID_PRICE
        if command.max_slippage_bps is not None:
            return reasons.SLIPPAGE_NOT_ALLOWED
    else:
        if command.price is not None:
            return reasons.PRICE_NOT_ALLOWED
        if time_in_force is _GTD:
            return reasons.INVALID_TIME_IN_FORCE
        if command.post_only:
            return reasons.POST_ONLY_NOT_ALLOWED
        if command.max_slippage_bps is not None and command.max_slippage_bps < 0:
            return reasons.INVALID_SLIPPAGE
    stop_price = command.stop_price
    if is_stop:
        if stop_price is None:
            return reasons.STOP_PRICE_REQUIRED
        if stop_price <= 0:
            return reasons.INVALID_STOP_PRICE
        if command.post_only:
            return reasons.POST_ONLY_NOT_ALLOWED
    elif stop_price is not None:
        return reasons.STOP_PRICE_NOT_ALLOWED
    if time_in_force is _GTD:
        if command.expire_time is None:
            return reasons.EXPIRE_TIME_REQUIRED
        if command.expire_time <= state.now:
            return reasons.EXPIRE_TIME_NOT_IN_FUTURE
    elif command.expire_time is not None:
        return reasons.EXPIRE_TIME_NOT_ALLOWED
    if command.post_only:
        if time_in_force is _IOC or time_in_force is _FOK:
            return reasons.POST_ONLY_NOT_ALLOWED
        assert command.price is not None
        if book.would_take(command.side is _BUY, command.price):
            return reasons.POST_ONLY_WOULD_TAKE
    if is_stop:
        assert stop_price is not None
        last = book.last_price
        if last is not None and (
            last >= stop_price if command.side is _BUY else last <= stop_price
        ):
            return reasons.STOP_WOULD_TRIGGER_IMMEDIATELY
    return None


def amend_rejection(
    state: EngineState, command: AmendOrder, order: Order, book: OrderBook
) -> str | None:
    """The reason this amend of the open `order` is refused, or None (funds are checked
    by the caller, once the amend is known to be valid)."""
    if state.not_trading and book.symbol in state.not_trading:
        return reasons.INSTRUMENT_HALTED
    if command.quantity is None and command.price is None:
        return reasons.NOTHING_TO_AMEND
    if command.price is not None:
        if order.order_type is _MARKET or order.order_type is _STOP_MARKET:
            return reasons.PRICE_NOT_ALLOWED
        if command.price <= 0:
            return reasons.INVALID_PRICE
    if command.quantity is not None:
        if command.quantity <= 0:
            return reasons.INVALID_QUANTITY
        if command.quantity <= order.filled:
            return reasons.QUANTITY_AT_OR_BELOW_FILLED
        if command.quantity < book.instrument.min_lots:
            return reasons.BELOW_MIN_QUANTITY
    new_price = order.price if command.price is None else command.price
    if order.post_only and new_price != order.price:
        assert new_price is not None
        if book.would_take(order.is_buy, new_price):
            return reasons.POST_ONLY_WOULD_TAKE
    return None
