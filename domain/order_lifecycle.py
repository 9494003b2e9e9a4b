"""The life of an order: accepted or rejected, resting or waiting as a stop, triggered,
amended, cancelled (one, or all of a user's), expired.

Each command function takes the engine state and the command and returns the events it
caused; matching itself is `domain.matching.execute`. After an incoming order or amend has
finished matching, `trigger_stops` triggers the stops whose condition the new last price
meets, oldest first, one at a time.

`place` is the hot path's entry: the common order (a plain limit or market order) is checked
inline (`domain.validation` names the reason otherwise) and, when it does not cross, rested
without a call.
"""

from __future__ import annotations

import heapq
from typing import Final

from msgspec.structs import astuple

from domain import reasons
from domain.assets import BPS
from domain.book import OrderBook
from domain.commands import AdvanceTime, AmendOrder, CancelAllOrders, CancelOrder, PlaceOrder
from domain.engine_state import EngineState
from domain.events import (
    AmendRejected,
    CancelRejected,
    ClockAdvanced,
    Event,
    FundsHeld,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderRejected,
    StopTriggered,
)
from domain.instruments import InstrumentStatus
from domain.matching import execute
from domain.orders import Order, OrderStatus, OrderType, SelfTradePrevention, Side, TimeInForce
from domain.validation import amend_rejection, place_rejection

_BUY: Final = Side.BUY
_LIMIT: Final = OrderType.LIMIT
_MARKET: Final = OrderType.MARKET
_STOP_LIMIT: Final = OrderType.STOP_LIMIT
_STOP_MARKET: Final = OrderType.STOP_MARKET
_GTC: Final = TimeInForce.GTC
_GTD: Final = TimeInForce.GTD
_CANCELLED: Final = OrderStatus.CANCELLED
_REJECTED: Final = OrderStatus.REJECTED
_EXPIRED: Final = OrderStatus.EXPIRED
_HALTED: Final = InstrumentStatus.HALTED
_BPS: Final = BPS

# `place` unpacks a PlaceOrder by position: one C call where the compiled build would
# otherwise look up each field generically (about a tenth of its instructions per order).
# A PlaceOrder whose fields change must change `place` too, so this fails at import.
_PLACE_ORDER_FIELDS: Final = (
    "order_id",
    "user_id",
    "instrument",
    "side",
    "order_type",
    "quantity",
    "price",
    "time_in_force",
    "post_only",
    "expire_time",
    "max_slippage_bps",
    "stp",
    "stop_price",
)
if PlaceOrder.__struct_fields__ != _PLACE_ORDER_FIELDS:
    raise ImportError(
        f"PlaceOrder's fields changed: update place() for {PlaceOrder.__struct_fields__}"
    )

# Classes called on the hot path, as Final names: the compiled build then reads each from
# a C static instead of looking it up in the module's globals at every call.
_OrderRejected: Final = OrderRejected
_OrderAccepted: Final = OrderAccepted
_CancelRejected: Final = CancelRejected
_OrderCancelled: Final = OrderCancelled
_astuple: Final = astuple


def place(state: EngineState, command: PlaceOrder) -> list[Event]:
    """Accept or reject a new order; match it, rest it or let it wait as a stop."""
    # Hot path: every field read at once into a local (see _PLACE_ORDER_FIELDS), the
    # common case (a plain limit or market order) validated inline, and a non-crossing GTC
    # order rested inline.
    now = state.now
    order_id: str
    user_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: int
    price: int | None
    time_in_force: TimeInForce
    post_only: bool
    expire_time: int | None
    max_slippage_bps: int | None
    stp: SelfTradePrevention
    stop_price: int | None
    (
        order_id,
        user_id,
        symbol,
        side,
        order_type,
        quantity,
        price,
        time_in_force,
        post_only,
        expire_time,
        max_slippage_bps,
        stp,
        stop_price,
    ) = _astuple(command)
    orders = state.open_orders_by_id
    book = state.books_by_symbol.get(symbol)
    # The common orders pass here without a call: a plain limit order (a positive price,
    # no slippage bound) or a plain market order (no price, a bound that is not negative
    # if any), neither post-only, GTD, stop nor expiring. Anything else is checked by
    # `place_rejection`, which names the reason (and accepts the rest).
    if (
        book is None
        or post_only
        or expire_time is not None
        or stop_price is not None
        or quantity < book.min_lots
        or time_in_force is _GTD
        or order_id in orders
        or order_id in state.closed_status_by_id
        or (
            (price is None or price <= 0 or max_slippage_bps is not None)
            if order_type is _LIMIT
            else (
                order_type is not _MARKET
                or price is not None
                or (max_slippage_bps is not None and max_slippage_bps < 0)
            )
        )
        or (state.not_trading and symbol in state.not_trading)
    ):
        reason = (
            reasons.UNKNOWN_INSTRUMENT if book is None else place_rejection(state, command, book)
        )
        if reason is not None or book is None:
            assert reason is not None
            if reason != reasons.DUPLICATE_ORDER_ID:
                state.closed_status_by_id[order_id] = _REJECTED
            return [_OrderRejected(order_id, user_id, symbol, reason, now)]
    is_buy = side is _BUY
    # With accounts on, a limit or stop-limit order holds all it can cost (see
    # `domain.accounts`), taken here inline; a market order holds nothing.
    funds = None
    accounts = state.accounts
    if accounts is not None and price is not None:
        money = accounts.money_by_symbol[symbol]
        if is_buy:
            notional = price * money.quote_per_tick_lot  # `buy_hold_per_lot`, inlined
            need = quantity * (notional + -(-notional * money.max_bps // _BPS))
            asset = money.quote
        else:
            need = quantity * money.base_per_lot
            asset = money.base
        funds = accounts.balances.get((user_id, asset))
        if funds is None or funds.available < need:
            state.closed_status_by_id[order_id] = _REJECTED
            return [OrderRejected(order_id, user_id, symbol, reasons.INSUFFICIENT_FUNDS, now)]
    state.arrivals = seq = state.arrivals + 1
    # A GTC/GTD limit order that does not cross rests at once: decided before the order
    # is built, so it is born `live` and appended below without any further call.
    # (`OrderBook.would_take`, inlined.)
    # (Plain `int` locals, not `int | None`: compiled, they compare and negate natively.)
    rests_now = False
    key = 0  # its priority key on its own side when it rests
    if order_type is _LIMIT and (time_in_force is _GTC or time_in_force is _GTD):
        assert price is not None
        limit: int = price
        key = -limit if is_buy else limit
        opposite_best = book.asks.best if is_buy else book.bids.best
        if opposite_best is None:
            rests_now = True
        else:
            best_key: int = opposite_best
            rests_now = best_key > -key
    accepted = _OrderAccepted(
        order_id,
        user_id,
        symbol,
        side,
        order_type,
        price,
        quantity,
        time_in_force,
        post_only,
        stp,
        expire_time,
        max_slippage_bps,
        stop_price,
        now,
    )
    events: list[Event] = [accepted]
    order = Order(
        accepted,
        order_id,
        user_id,
        symbol,
        is_buy,
        price,
        quantity,
        quantity,
        seq,
        False,
        rests_now,
        funds,
    )
    if expire_time is not None:
        heapq.heappush(state.expiry_queue, (expire_time, seq, order_id))
    if funds is not None:
        funds.available -= need
        funds.held += need
        events.append(FundsHeld(order_id, user_id, asset, need, now))
    if rests_now:
        own = book.bids if is_buy else book.asks
        level = own.levels.get(key)
        if level is None:
            own.add_live(order)
        else:
            marks = own.marks
            if marks is not None:
                marks.mark(level)
            level.orders.append(order)
            level.total += quantity
            level.count += 1
        orders[order_id] = order
        return events
    if order_type is _STOP_LIMIT or order_type is _STOP_MARKET:
        book.add_stop(order)
        orders[order_id] = order
        return events
    last_before = book.last_price
    execute(state, book, order, events)
    if book.stops and book.last_price != last_before:
        trigger_stops(state, book, events)
    return events


def trigger_stops(state: EngineState, book: OrderBook, events: list[Event]) -> None:
    """While a waiting stop's condition holds, trigger the oldest such stop and match it."""
    while book.stops:
        last = book.last_price
        if last is None:
            return
        chosen = book.oldest_triggered_stop(last)
        if chosen is None:
            return
        book.remove_stop(chosen.order_id)
        chosen.triggered = True
        assert chosen.stop_price is not None
        events.append(
            StopTriggered(chosen.order_id, book.symbol, chosen.stop_price, last, state.now)
        )
        execute(state, book, chosen, events)


def cancel(state: EngineState, command: CancelOrder) -> list[Event]:
    """Cancel an open order or a waiting stop at the user's request."""
    order_id = command.order_id
    order = state.open_orders_by_id.pop(order_id, None)
    if order is None:
        reason = (
            reasons.ORDER_CLOSED if order_id in state.closed_status_by_id else reasons.UNKNOWN_ORDER
        )
        return [_CancelRejected(order_id, None, reason, state.now)]
    if state.not_trading and state.not_trading.get(order.instrument) is _HALTED:
        state.open_orders_by_id[order_id] = order
        return [_CancelRejected(order_id, order.instrument, reasons.INSTRUMENT_HALTED, state.now)]
    remaining = order.remaining
    if order.live:
        # Inlined BookSide.remove: cancels are a fifth of the traffic.
        book = state.books_by_symbol[order.instrument]
        side = book.bids if order.is_buy else book.asks
        key = side.sign * order.price  # type: ignore[operator]
        level = side.levels[key]
        marks = side.marks
        if marks is not None:
            marks.mark(level)
        order.live = False
        level.total -= remaining
        level.count -= 1
        if not level.count:
            side.drop_level(key)
    else:
        state.books_by_symbol[order.instrument].remove_stop(order_id)
    state.closed_status_by_id[order_id] = _CANCELLED
    events: list[Event] = [
        _OrderCancelled(
            order_id,
            order.instrument,
            reasons.USER_REQUESTED,
            remaining,
            order.filled,
            state.now,
        )
    ]
    if state.accounts is not None:
        state.release_hold(state.books_by_symbol[order.instrument], order, events)
    return events


def cancel_all(state: EngineState, command: CancelAllOrders) -> list[Event]:
    """Cancel the user's open orders and waiting stops, oldest first (but none on a halted
    instrument, where cancels are refused). This scans every
    open order (O(open orders)), a cost paid by this rare command only, where a
    per-user index would be kept up on every place and fill."""
    user_id = command.user_id
    instrument = command.instrument
    chosen = sorted(
        (
            order
            for order in state.open_orders_by_id.values()
            if order.user_id == user_id
            and (instrument is None or order.instrument == instrument)
            and state.not_trading.get(order.instrument) is not _HALTED
        ),
        key=_arrival,
    )
    events: list[Event] = []
    for order in chosen:
        book = state.books_by_symbol[order.instrument]
        state.take_off(book, order)
        state.close_cancelled(book, order, reasons.MASS_CANCEL, events)
    return events


def amend(state: EngineState, command: AmendOrder) -> list[Event]:
    """FIX cancel/replace: keep time priority when only the quantity goes down, else
    re-enter the order as incoming (it may match at once)."""
    order_id = command.order_id
    now = state.now
    order = state.open_orders_by_id.get(order_id)
    if order is None:
        reason = (
            reasons.ORDER_CLOSED if order_id in state.closed_status_by_id else reasons.UNKNOWN_ORDER
        )
        return [AmendRejected(order_id, None, reason, now)]
    book = state.books_by_symbol[order.instrument]
    rejection = amend_rejection(state, command, order, book)
    if rejection is not None:
        return [AmendRejected(order_id, book.symbol, rejection, now)]
    new_total = order.quantity if command.quantity is None else command.quantity
    new_price = order.price if command.price is None else command.price
    new_remaining = new_total - order.filled
    accounts = state.accounts
    if accounts is not None:
        # What the amended order will hold, checked before anything changes.
        money = accounts.money_by_symbol[book.symbol]
        held_before = money.hold_of(order)
        if not accounts.can_hold_more(money, order, new_price, new_remaining):
            return [AmendRejected(order_id, book.symbol, reasons.INSUFFICIENT_FUNDS, now)]
    if not order.live:
        # A waiting stop: no queue position to keep or lose; update it in place.
        order.quantity = new_total
        order.remaining = new_remaining
        order.price = new_price
        events: list[Event] = [
            OrderAmended(order_id, book.symbol, new_price, new_total, new_remaining, False, now)
        ]
        if accounts is not None:
            accounts.adjust(money, order, held_before, events, now)
        return events
    if new_price == order.price and new_total <= order.quantity:
        # Lowering the quantity keeps time priority (FIX cancel/replace).
        side = book.bids if order.is_buy else book.asks
        assert new_price is not None
        key = side.sign * new_price
        level = side.levels[key]
        if side.marks is not None:
            side.marks.mark(level)
        level.total += new_remaining - order.remaining
        order.quantity = new_total
        order.remaining = new_remaining
        events = [
            OrderAmended(order_id, book.symbol, new_price, new_total, new_remaining, False, now)
        ]
        if accounts is not None:
            accounts.adjust(money, order, held_before, events, now)
        return events
    # Raising the quantity or changing the price loses priority: off the book, then in
    # again as an incoming order that may match at once.
    (book.bids if order.is_buy else book.asks).remove(order)
    replacement = _requeued_copy(order)
    replacement.price = new_price
    replacement.quantity = new_total
    replacement.remaining = new_remaining
    state.open_orders_by_id[order_id] = replacement
    events = [OrderAmended(order_id, book.symbol, new_price, new_total, new_remaining, True, now)]
    if accounts is not None:
        accounts.adjust(money, replacement, held_before, events, now)
    last_before = book.last_price
    execute(state, book, replacement, events)
    if book.stops and book.last_price != last_before:
        trigger_stops(state, book, events)
    return events


def advance_time(state: EngineState, command: AdvanceTime) -> list[Event]:
    """Move the clock forward and expire the GTD orders due by then, in (expire time,
    arrival) order."""
    now = command.now
    if now <= state.now:
        return []  # the clock never goes back; a repeated tick is a no-op
    state.now = now
    state.forget_oldest_closed()
    events: list[Event] = [ClockAdvanced(now)]
    expiry = state.expiry_queue
    orders = state.open_orders_by_id
    while expiry and expiry[0][0] <= now:
        _, _, order_id = heapq.heappop(expiry)
        order = orders.get(order_id)
        if order is None:
            continue
        book = state.books_by_symbol[order.instrument]
        state.take_off(book, order)
        state.closed_status_by_id[order_id] = _EXPIRED
        events.append(OrderExpired(order_id, book.symbol, order.remaining, order.filled, now))
        if state.accounts is not None:
            state.release_hold(book, order, events)
    return events


def _arrival(order: Order) -> tuple[int, str]:
    return order.seq, order.order_id


def _requeued_copy(order: Order) -> Order:
    """A fresh record of an order that lost its place: the old one stays in its level's
    queue, flagged not live, until the queue drops it."""
    return Order(
        order.terms,
        order.order_id,
        order.user_id,
        order.instrument,
        order.is_buy,
        order.price,
        order.quantity,
        order.remaining,
        order.seq,
        order.triggered,
        False,
        order.funds,
    )
