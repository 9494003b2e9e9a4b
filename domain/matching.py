"""Matching: an incoming order against the opposite side of its book.

`execute` takes an order that is not on the book (new, re-entering after an amend that lost
priority, or a triggered stop), works out how far it may cross (its limit price, or for a
market order the slippage bound), lets a FOK order through only if it can fill completely,
matches it by price-time priority at the makers' prices with self-trade prevention, and then
rests or cancels what remains. Stops are not triggered here: `domain.order_lifecycle` does
that once an incoming order has finished.

This is the hot path: it runs for every order that crosses, so `match` binds everything to
locals and builds events positionally.
"""

from __future__ import annotations

from typing import Final

from domain import reasons
from domain.accounts import Accounts, fee_of
from domain.book import BookSide, OrderBook
from domain.engine_state import EngineState
from domain.events import (
    Event,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    TradeExecuted,
)
from domain.orders import Order, OrderStatus, OrderType, SelfTradePrevention, TimeInForce

_MARKET: Final = OrderType.MARKET
_STOP_MARKET: Final = OrderType.STOP_MARKET
_IOC: Final = TimeInForce.IOC
_FOK: Final = TimeInForce.FOK
_STP_NONE: Final = SelfTradePrevention.NONE
_CANCEL_OLDEST: Final = SelfTradePrevention.CANCEL_OLDEST
_CANCEL_BOTH: Final = SelfTradePrevention.CANCEL_BOTH
_FILLED: Final = OrderStatus.FILLED
_CANCELLED: Final = OrderStatus.CANCELLED
_BPS: Final = 10_000
# Classes called on the hot path, as Final names: the compiled build then reads each from
# a C static instead of looking it up in the module's globals at every call.
_OrderCancelled: Final = OrderCancelled
_TradeExecuted: Final = TradeExecuted
_OrderPartiallyFilled: Final = OrderPartiallyFilled
_OrderFilled: Final = OrderFilled


def slippage_limit_key(is_buy: bool, best_price: int, max_slippage_bps: int) -> int:
    """The priority key a market order may cross up to: prices no worse than the best
    opposite price at arrival by `max_slippage_bps` basis points. Buy: floor(best * (1 +
    bps/10^4)); sell: ceil(best * (1 - bps/10^4)), negated as bids are keyed."""
    if is_buy:
        return best_price * (_BPS + max_slippage_bps) // _BPS
    return (best_price * (max_slippage_bps - _BPS)) // _BPS


def execute(state: EngineState, book: OrderBook, order: Order, events: list[Event]) -> None:
    """Match an incoming order (new, re-entering after amend, or a triggered stop), then
    rest or cancel what remains. The order is not on the book while this runs."""
    is_buy = order.is_buy
    opposite = book.asks if is_buy else book.bids
    terms = order.terms
    order_type = terms.order_type
    time_in_force = terms.time_in_force
    is_market = order_type is _MARKET or order_type is _STOP_MARKET
    best = opposite.best
    limit_key: int | None
    if is_market:
        bps = terms.max_slippage_bps
        if best is None or bps is None:
            limit_key = None
        else:
            limit_key = slippage_limit_key(is_buy, opposite.levels[best].price, bps)
    else:
        price = order.price
        assert price is not None
        limit_key = price if is_buy else -price
    stopped_for: str | None = None
    if best is not None and (limit_key is None or best <= limit_key):
        if time_in_force is _FOK and not fillable(state, book, opposite, order, limit_key):
            state.close_cancelled(book, order, reasons.FOK_NOT_FILLABLE, events)
            return
        stopped_for = match(state, book, opposite, order, limit_key, events)
        if not order.remaining:
            state.open_orders_by_id.pop(order.order_id, None)
            state.closed_status_by_id[order.order_id] = _FILLED
            return
    if time_in_force is _FOK:
        # Nothing crossed at all; had anything crossed, the pre-check decided above.
        reason = reasons.FOK_NOT_FILLABLE
    elif stopped_for is not None:
        reason = stopped_for
    elif is_market:
        reason = reasons.SLIPPAGE if opposite.best is not None else reasons.NO_LIQUIDITY
    elif time_in_force is _IOC:
        reason = reasons.IOC_REMAINDER
    else:
        (book.bids if is_buy else book.asks).add_live(order)
        state.open_orders_by_id[order.order_id] = order
        return
    state.close_cancelled(book, order, reason, events)


def fillable(
    state: EngineState, book: OrderBook, opposite: BookSide, taker: Order, limit_key: int | None
) -> bool:
    """FOK pre-check: could the whole remainder fill now, given the STP mode (and, for a
    market order with accounts on, the taker's available funds)?"""
    accounts = state.accounts
    if accounts is not None and taker.price is None:
        return _fillable_within_funds(accounts, book, opposite, taker, limit_key)
    needed = taker.remaining
    stp = taker.terms.stp
    user_id = taker.user_id
    for level in opposite.iter_levels(limit_key):
        if stp is _STP_NONE:
            needed -= level.total
            if needed <= 0:
                return True
            continue
        for maker in level.live_orders():
            if maker.user_id == user_id:
                if stp is _CANCEL_OLDEST:
                    continue  # it would be cancelled; matching goes on past it
                return False
            needed -= maker.remaining
            if needed <= 0:
                return True
    return False


def _fillable_within_funds(
    accounts: Accounts, book: OrderBook, opposite: BookSide, taker: Order, limit_key: int | None
) -> bool:
    """FOK pre-check of a market order that pays as it fills: walk the makers it would
    meet, fill by fill (each fee rounds on its own), and see whether the taker can pay
    them all."""
    money = accounts.money_by_symbol[book.symbol]
    balance = accounts.balances.get((taker.user_id, money.hold_asset(taker.is_buy)))
    budget = 0 if balance is None else balance.available
    needed = taker.remaining
    stp = taker.terms.stp
    user_id = taker.user_id
    for level in opposite.iter_levels(limit_key):
        for maker in level.live_orders():
            if stp is not _STP_NONE and maker.user_id == user_id:
                if stp is _CANCEL_OLDEST:
                    continue
                return False
            lots = needed if needed < maker.remaining else maker.remaining
            if taker.is_buy:
                notional = level.price * lots * money.quote_per_tick_lot
                budget -= notional + fee_of(notional, money.taker_bps)
            else:
                budget -= lots * money.base_per_lot
            if budget < 0:
                return False
            needed -= lots
            if needed <= 0:
                return True
    return False


def match(
    state: EngineState,
    book: OrderBook,
    opposite: BookSide,
    taker: Order,
    limit_key: int | None,
    events: list[Event],
) -> str | None:
    """Price-time matching against `opposite` up to `limit_key` (None: no limit).
    Returns the reason matching stopped before the taker ran out of quantity or of
    prices it accepts (SELF_TRADE, or INSUFFICIENT_FUNDS for a market order that cannot
    pay its next lot), else None."""
    now = state.now
    symbol = book.symbol
    levels = opposite.levels
    marks = opposite.marks
    append = events.append
    orders = state.open_orders_by_id
    closed = state.closed_status_by_id
    taker_id = taker.order_id
    taker_user = taker.user_id
    terms = taker.terms
    taker_side = terms.side
    stp = terms.stp
    check_self = stp is not _STP_NONE
    remaining = taker.remaining
    filled = taker.filled
    trade_count = start_count = book.trade_count
    last_price = 0
    stopped: str | None = None
    # With accounts on, every trade settles; a taker that holds nothing (a market order)
    # pays each fill from available, so each fill is first cut to what it can pay.
    accounts = state.accounts
    money = None if accounts is None else accounts.money_by_symbol[symbol]
    pays_as_it_fills = accounts is not None and taker.price is None
    while remaining:
        key = opposite.best
        if key is None or (limit_key is not None and key > limit_key):
            break
        level = levels[key]
        if marks is not None:
            marks.mark(level)
        queue = level.orders
        price = level.price
        while remaining and level.count:
            maker = queue[0]
            if not maker.live:
                queue.popleft()
                continue
            if check_self and maker.user_id == taker_user:
                if stp is _CANCEL_OLDEST or stp is _CANCEL_BOTH:
                    queue.popleft()
                    maker.live = False
                    level.total -= maker.remaining
                    level.count -= 1
                    maker_id = maker.order_id
                    del orders[maker_id]
                    closed[maker_id] = _CANCELLED
                    append(
                        _OrderCancelled(
                            maker_id,
                            symbol,
                            reasons.SELF_TRADE,
                            maker.remaining,
                            maker.filled,
                            now,
                        )
                    )
                    if accounts is not None:
                        state.release_hold(book, maker, events)
                    if stp is _CANCEL_OLDEST:
                        continue
                stopped = reasons.SELF_TRADE
                break
            maker_remaining = maker.remaining
            quantity = remaining if remaining < maker_remaining else maker_remaining
            if pays_as_it_fills:
                assert accounts is not None and money is not None
                quantity = accounts.affordable_lots(money, taker, price, quantity)
                if not quantity:
                    stopped = reasons.INSUFFICIENT_FUNDS
                    break
            trade_count += 1
            trade_id = f"{symbol}-{trade_count}"
            last_price = price
            remaining -= quantity
            filled += quantity
            maker_remaining -= quantity
            maker.remaining = maker_remaining
            maker_filled = maker.quantity - maker_remaining
            level.total -= quantity
            maker_id = maker.order_id
            append(
                _TradeExecuted(
                    trade_id,
                    symbol,
                    price,
                    quantity,
                    maker_id,
                    taker_id,
                    taker_side,
                    maker.user_id,
                    taker_user,
                    now,
                )
            )
            if maker_remaining:
                append(
                    _OrderPartiallyFilled(
                        maker_id,
                        symbol,
                        trade_id,
                        price,
                        quantity,
                        maker_filled,
                        maker_remaining,
                        now,
                    )
                )
            else:
                # Filled makers leave the queue and every index; their `live` flag
                # is never read again, so it is not worth a write.
                queue.popleft()
                level.count -= 1
                del orders[maker_id]
                closed[maker_id] = _FILLED
                append(
                    _OrderFilled(maker_id, symbol, trade_id, price, quantity, maker_filled, 0, now)
                )
            if remaining:
                append(
                    _OrderPartiallyFilled(
                        taker_id, symbol, trade_id, price, quantity, filled, remaining, now
                    )
                )
            else:
                append(_OrderFilled(taker_id, symbol, trade_id, price, quantity, filled, 0, now))
            if money is not None:
                assert accounts is not None
                accounts.settle(money, trade_id, symbol, maker, taker, price, quantity, events, now)
        if not level.count:
            opposite.drop_level(key)
        if stopped:
            break
    taker.remaining = remaining
    if trade_count != start_count:
        book.trade_count = trade_count
        book.last_price = last_price
    return stopped
