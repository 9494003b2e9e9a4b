"""The matching engine: a deterministic state machine over commands and events.

`handle(command)` returns the events the command caused and is the only way state changes;
`snapshot()` and `restore()` save and load the whole state as plain JSON-able data. No
clock, no I/O: time moves only by `AdvanceTime`, so the same commands always produce the
same events.

The hot path (`_place` -> `_execute` -> `_match`) binds attributes to locals and builds
events positionally on purpose: it runs for every order.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from decimal import Decimal
from itertools import islice
from typing import Any

from domain import reasons
from domain.book import BookSide, OrderBook
from domain.commands import (
    AddInstrument,
    AdvanceTime,
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Command,
    PlaceOrder,
)
from domain.events import (
    AmendRejected,
    CancelRejected,
    ClockAdvanced,
    Event,
    InstrumentAdded,
    InstrumentRejected,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    StopTriggered,
    TradeExecuted,
)
from domain.instruments import Instrument, plain_text
from domain.orders import Order, OrderStatus, OrderType, SelfTradePrevention, Side, TimeInForce

_BUY = Side.BUY
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_STOP_LIMIT = OrderType.STOP_LIMIT
_STOP_MARKET = OrderType.STOP_MARKET
_GTC = TimeInForce.GTC
_IOC = TimeInForce.IOC
_FOK = TimeInForce.FOK
_GTD = TimeInForce.GTD
_STP_NONE = SelfTradePrevention.NONE
_CANCEL_OLDEST = SelfTradePrevention.CANCEL_OLDEST
_CANCEL_BOTH = SelfTradePrevention.CANCEL_BOTH
_FILLED = OrderStatus.FILLED
_CANCELLED = OrderStatus.CANCELLED
_REJECTED = OrderStatus.REJECTED
_EXPIRED = OrderStatus.EXPIRED
_BPS = 10_000

SNAPSHOT_FORMAT = 1


class MatchingEngine:
    """One book per instrument, the engine clock, and every open order by id."""

    __slots__ = (
        "_books",
        "_closed",
        "_closed_memory",
        "_expiry",
        "_instruments",
        "_now",
        "_orders",
        "_seq",
    )

    def __init__(
        self, instruments: Iterable[Instrument] = (), closed_order_memory: int | None = None
    ) -> None:
        """`closed_order_memory`: how many closed order ids to remember (for
        DUPLICATE_ORDER_ID and ORDER_CLOSED); None remembers all. The oldest are forgotten
        when the clock advances, so memory and snapshots stay bounded in a long-running
        service (which must then keep order ids unique itself)."""
        self._closed_memory = closed_order_memory
        self._books: dict[str, OrderBook] = {}
        self._instruments: dict[str, Instrument] = {}
        # Open orders: resting on a book or waiting stops.
        self._orders: dict[str, Order] = {}
        # Final status of every order id the engine has closed (duplicate ids, ORDER_CLOSED).
        self._closed: dict[str, OrderStatus] = {}
        # (expire_time, seq, order_id) of GTD orders; entries of closed orders are skipped.
        self._expiry: list[tuple[int, int, str]] = []
        self._now = 0
        self._seq = 0
        for instrument in instruments:
            self._open_book(instrument)

    def _open_book(self, instrument: Instrument) -> OrderBook:
        book = self._books[instrument.symbol] = OrderBook(instrument)
        self._instruments[instrument.symbol] = instrument
        return book

    # ------------------------------------------------------------------ queries

    @property
    def now(self) -> int:
        """Engine time, nanoseconds since the Unix epoch."""
        return self._now

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        """Instruments by symbol (a live view: do not modify)."""
        return self._instruments

    def book_levels(
        self, instrument: str, depth: int = 10
    ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """Aggregated levels best first: (price_ticks, total_lots, order_count) per level."""
        book = self._books[instrument]
        return book.bids.depth(depth), book.asks.depth(depth)

    def open_order(self, order_id: str) -> Order | None:
        """The engine's live record of an open order (read only), or None."""
        return self._orders.get(order_id)

    def instrument_of(self, order_id: str) -> str | None:
        """Instrument of an open order, or None when the order is not open."""
        order = self._orders.get(order_id)
        return None if order is None else order.instrument

    def order_status(self, order_id: str) -> OrderStatus | None:
        order = self._orders.get(order_id)
        if order is None:
            return self._closed.get(order_id)
        if order.order_type is not _LIMIT and order.order_type is not _MARKET:
            if not order.triggered:
                return OrderStatus.TRIGGER_PENDING
            if order.filled == 0:
                return OrderStatus.TRIGGERED
        return OrderStatus.PARTIALLY_FILLED if order.filled else OrderStatus.OPEN

    def last_price(self, instrument: str) -> int | None:
        return self._books[instrument].last_price

    # ------------------------------------------------------------------ commands

    def handle(self, command: Command) -> list[Event]:
        """Apply a command; return the events it caused. Rejections are events."""
        kind = type(command)
        if kind is PlaceOrder:
            return self._place(command)  # type: ignore[arg-type]
        if kind is CancelOrder:
            return self._cancel(command)  # type: ignore[arg-type]
        if kind is AmendOrder:
            return self._amend(command)  # type: ignore[arg-type]
        if kind is AdvanceTime:
            return self._advance_time(command)  # type: ignore[arg-type]
        if kind is CancelAllOrders:
            return self._cancel_all(command)  # type: ignore[arg-type]
        if kind is AddInstrument:
            return self._add_instrument(command)  # type: ignore[arg-type]
        raise TypeError(f"not a command: {command!r}")

    def _add_instrument(self, command: AddInstrument) -> list[Event]:
        instrument = command.instrument
        existing = self._books.get(instrument.symbol)
        if existing is not None:
            if existing.instrument == instrument:
                return []
            return [InstrumentRejected(instrument.symbol, reasons.INSTRUMENT_EXISTS)]
        self._open_book(instrument)
        return [
            InstrumentAdded(
                instrument.symbol,
                instrument.tick_size,
                instrument.lot_size,
                instrument.min_quantity,
            )
        ]

    def _place_rejection(self, command: PlaceOrder, book: OrderBook) -> str | None:
        """The reason this order cannot be accepted, or None."""
        order_id = command.order_id
        if order_id in self._orders or order_id in self._closed:
            return reasons.DUPLICATE_ORDER_ID
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
            if command.expire_time <= self._now:
                return reasons.EXPIRE_TIME_NOT_IN_FUTURE
        elif command.expire_time is not None:
            return reasons.EXPIRE_TIME_NOT_ALLOWED
        if command.post_only:
            if time_in_force is _IOC or time_in_force is _FOK:
                return reasons.POST_ONLY_NOT_ALLOWED
            price = command.price
            assert price is not None
            if command.side is _BUY:
                best = book.asks.best
                if best is not None and best <= price:
                    return reasons.POST_ONLY_WOULD_TAKE
            else:
                best = book.bids.best
                if best is not None and best <= -price:
                    return reasons.POST_ONLY_WOULD_TAKE
        if is_stop:
            assert stop_price is not None
            last = book.last_price
            if last is not None and (
                last >= stop_price if command.side is _BUY else last <= stop_price
            ):
                return reasons.STOP_WOULD_TRIGGER_IMMEDIATELY
        return None

    def _place(self, command: PlaceOrder) -> list[Event]:
        # Hot path: every field read once into a local, the common case (a plain GTC/IOC
        # limit order) validated inline, and a non-crossing GTC order rested inline.
        now = self._now
        order_id = command.order_id
        user_id = command.user_id
        symbol = command.instrument
        side = command.side
        order_type = command.order_type
        quantity = command.quantity
        price = command.price
        time_in_force = command.time_in_force
        post_only = command.post_only
        expire_time = command.expire_time
        orders = self._orders
        book = self._books.get(symbol)
        if (
            book is None
            or order_type is not _LIMIT
            or post_only
            or expire_time is not None
            or command.stop_price is not None
            or command.max_slippage_bps is not None
            or price is None
            or price <= 0
            or quantity < book.min_lots
            or time_in_force is _GTD
            or order_id in orders
            or order_id in self._closed
        ):
            reason = (
                reasons.UNKNOWN_INSTRUMENT if book is None else self._place_rejection(command, book)
            )
            if reason is not None or book is None:
                assert reason is not None
                if reason != reasons.DUPLICATE_ORDER_ID:
                    self._closed[order_id] = _REJECTED
                return [OrderRejected(order_id, user_id, symbol, reason, now)]
        self._seq = seq = self._seq + 1
        is_buy = side is _BUY
        # A GTC/GTD limit order that does not cross rests at once: decided before the order
        # is built, so it is born `live` and appended below without any further call.
        rests_now = False
        if order_type is _LIMIT and (time_in_force is _GTC or time_in_force is _GTD):
            assert price is not None
            if is_buy:
                best = book.asks.best
                rests_now = best is None or best > price
            else:
                best = book.bids.best
                rests_now = best is None or best > -price
        accepted = OrderAccepted(
            order_id,
            user_id,
            symbol,
            side,
            order_type,
            price,
            quantity,
            time_in_force,
            post_only,
            command.stp,
            expire_time,
            command.max_slippage_bps,
            command.stop_price,
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
        )
        if expire_time is not None:
            heapq.heappush(self._expiry, (expire_time, seq, order_id))
        if rests_now:
            assert price is not None
            own = book.bids if is_buy else book.asks
            level = own.levels.get(-price if is_buy else price)
            if level is None:
                own.add_live(order)
            else:
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
        self._execute(book, order, events)
        if book.stops and book.last_price != last_before:
            self._trigger_stops(book, events)
        return events

    def _execute(self, book: OrderBook, order: Order, events: list[Event]) -> None:
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
                best_price = opposite.levels[best].price
                if is_buy:
                    limit_key = best_price * (_BPS + bps) // _BPS
                else:
                    # ceil(best * (1 - bps)), as a bid key (negated price)
                    limit_key = (best_price * (bps - _BPS)) // _BPS
        else:
            price = order.price
            assert price is not None
            limit_key = price if is_buy else -price
        self_trade = False
        if best is not None and (limit_key is None or best <= limit_key):
            if time_in_force is _FOK and not self._fillable(opposite, order, limit_key):
                self._close_cancelled(book, order, reasons.FOK_NOT_FILLABLE, events)
                return
            self_trade = self._match(book, opposite, order, limit_key, events)
            if not order.remaining:
                self._orders.pop(order.order_id, None)
                self._closed[order.order_id] = _FILLED
                return
        if time_in_force is _FOK:
            # Nothing crossed at all; had anything crossed, the pre-check decided above.
            reason = reasons.FOK_NOT_FILLABLE
        elif self_trade:
            reason = reasons.SELF_TRADE
        elif is_market:
            reason = reasons.SLIPPAGE if opposite.best is not None else reasons.NO_LIQUIDITY
        elif time_in_force is _IOC:
            reason = reasons.IOC_REMAINDER
        else:
            (book.bids if is_buy else book.asks).add_live(order)
            self._orders[order.order_id] = order
            return
        self._close_cancelled(book, order, reason, events)

    def _close_cancelled(
        self, book: OrderBook, order: Order, reason: str, events: list[Event]
    ) -> None:
        order_id = order.order_id
        self._orders.pop(order_id, None)
        self._closed[order_id] = _CANCELLED
        events.append(
            OrderCancelled(order_id, book.symbol, reason, order.remaining, order.filled, self._now)
        )

    @staticmethod
    def _fillable(opposite: BookSide, taker: Order, limit_key: int | None) -> bool:
        """FOK pre-check: could the whole remainder fill now, given the STP mode?"""
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

    def _match(
        self,
        book: OrderBook,
        opposite: BookSide,
        taker: Order,
        limit_key: int | None,
        events: list[Event],
    ) -> bool:
        """Price-time matching against `opposite` up to `limit_key` (None: no limit).
        Returns True when a self-trade stopped the incoming order."""
        now = self._now
        symbol = book.symbol
        levels = opposite.levels
        append = events.append
        orders = self._orders
        closed = self._closed
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
        stopped = False
        while remaining:
            key = opposite.best
            if key is None or (limit_key is not None and key > limit_key):
                break
            level = levels[key]
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
                            OrderCancelled(
                                maker_id,
                                symbol,
                                reasons.SELF_TRADE,
                                maker.remaining,
                                maker.filled,
                                now,
                            )
                        )
                        if stp is _CANCEL_OLDEST:
                            continue
                    stopped = True
                    break
                maker_remaining = maker.remaining
                quantity = remaining if remaining < maker_remaining else maker_remaining
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
                    TradeExecuted(
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
                        OrderPartiallyFilled(
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
                        OrderFilled(
                            maker_id, symbol, trade_id, price, quantity, maker_filled, 0, now
                        )
                    )
                if remaining:
                    append(
                        OrderPartiallyFilled(
                            taker_id, symbol, trade_id, price, quantity, filled, remaining, now
                        )
                    )
                else:
                    append(OrderFilled(taker_id, symbol, trade_id, price, quantity, filled, 0, now))
            if not level.count:
                opposite.drop_level(key)
            if stopped:
                break
        taker.remaining = remaining
        if trade_count != start_count:
            book.trade_count = trade_count
            book.last_price = last_price
        return stopped

    def _trigger_stops(self, book: OrderBook, events: list[Event]) -> None:
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
                StopTriggered(chosen.order_id, book.symbol, chosen.stop_price, last, self._now)
            )
            self._execute(book, chosen, events)

    def _take_off(self, book: OrderBook, order: Order) -> None:
        """Remove an open order from wherever it waits (book level or stop list)."""
        if order.live:
            (book.bids if order.is_buy else book.asks).remove(order)
        else:
            book.remove_stop(order.order_id)
        del self._orders[order.order_id]

    def _cancel(self, command: CancelOrder) -> list[Event]:
        order_id = command.order_id
        order = self._orders.pop(order_id, None)
        if order is None:
            reason = reasons.ORDER_CLOSED if order_id in self._closed else reasons.UNKNOWN_ORDER
            return [CancelRejected(order_id, None, reason, self._now)]
        remaining = order.remaining
        if order.live:
            # Inlined BookSide.remove: cancels are a fifth of the traffic.
            book = self._books[order.instrument]
            side = book.bids if order.is_buy else book.asks
            key = side.sign * order.price  # type: ignore[operator]
            level = side.levels[key]
            order.live = False
            level.total -= remaining
            level.count -= 1
            if not level.count:
                side.drop_level(key)
        else:
            self._books[order.instrument].remove_stop(order_id)
        self._closed[order_id] = _CANCELLED
        return [
            OrderCancelled(
                order_id,
                order.instrument,
                reasons.USER_REQUESTED,
                remaining,
                order.filled,
                self._now,
            )
        ]

    def _cancel_all(self, command: CancelAllOrders) -> list[Event]:
        """Cancel the user's open orders and waiting stops, oldest first. This scans every
        open order (O(open orders)), a cost paid by this rare command only, where a
        per-user index would be kept up on every place and fill."""
        user_id = command.user_id
        instrument = command.instrument
        chosen = sorted(
            (
                order
                for order in self._orders.values()
                if order.user_id == user_id
                and (instrument is None or order.instrument == instrument)
            ),
            key=_arrival,
        )
        events: list[Event] = []
        for order in chosen:
            book = self._books[order.instrument]
            self._take_off(book, order)
            self._close_cancelled(book, order, reasons.MASS_CANCEL, events)
        return events

    def _amend_rejection(self, command: AmendOrder, order: Order, book: OrderBook) -> str | None:
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
            opposite = book.asks if order.is_buy else book.bids
            best = opposite.best
            if best is not None and best <= (new_price if order.is_buy else -new_price):
                return reasons.POST_ONLY_WOULD_TAKE
        return None

    def _amend(self, command: AmendOrder) -> list[Event]:
        order_id = command.order_id
        now = self._now
        order = self._orders.get(order_id)
        if order is None:
            reason = reasons.ORDER_CLOSED if order_id in self._closed else reasons.UNKNOWN_ORDER
            return [AmendRejected(order_id, None, reason, now)]
        book = self._books[order.instrument]
        rejection = self._amend_rejection(command, order, book)
        if rejection is not None:
            return [AmendRejected(order_id, book.symbol, rejection, now)]
        new_total = order.quantity if command.quantity is None else command.quantity
        new_price = order.price if command.price is None else command.price
        new_remaining = new_total - order.filled
        if not order.live:
            # A waiting stop: no queue position to keep or lose; update it in place.
            order.quantity = new_total
            order.remaining = new_remaining
            order.price = new_price
            return [
                OrderAmended(order_id, book.symbol, new_price, new_total, new_remaining, False, now)
            ]
        if new_price == order.price and new_total <= order.quantity:
            # Lowering the quantity keeps time priority (FIX cancel/replace).
            side = book.bids if order.is_buy else book.asks
            assert new_price is not None
            level = side.levels[side.sign * new_price]
            level.total += new_remaining - order.remaining
            order.quantity = new_total
            order.remaining = new_remaining
            return [
                OrderAmended(order_id, book.symbol, new_price, new_total, new_remaining, False, now)
            ]
        # Raising the quantity or changing the price loses priority: off the book, then in
        # again as an incoming order that may match at once.
        (book.bids if order.is_buy else book.asks).remove(order)
        replacement = _copy_order(order)
        replacement.price = new_price
        replacement.quantity = new_total
        replacement.remaining = new_remaining
        self._orders[order_id] = replacement
        events: list[Event] = [
            OrderAmended(order_id, book.symbol, new_price, new_total, new_remaining, True, now)
        ]
        last_before = book.last_price
        self._execute(book, replacement, events)
        if book.stops and book.last_price != last_before:
            self._trigger_stops(book, events)
        return events

    def _advance_time(self, command: AdvanceTime) -> list[Event]:
        now = command.now
        if now <= self._now:
            return []  # the clock never goes back; a repeated tick is a no-op
        self._now = now
        self._forget_old_closed()
        events: list[Event] = [ClockAdvanced(now)]
        expiry = self._expiry
        orders = self._orders
        while expiry and expiry[0][0] <= now:
            _, _, order_id = heapq.heappop(expiry)
            order = orders.get(order_id)
            if order is None:
                continue
            book = self._books[order.instrument]
            self._take_off(book, order)
            self._closed[order_id] = _EXPIRED
            events.append(OrderExpired(order_id, book.symbol, order.remaining, order.filled, now))
        return events

    def _forget_old_closed(self) -> None:
        memory = self._closed_memory
        if memory is None:
            return
        excess = len(self._closed) - memory
        if excess > 0:
            closed = self._closed
            # Dicts keep insertion order: the first ids are the longest closed.
            for order_id in list(islice(closed, excess)):
                del closed[order_id]

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able data; `restore` turns it back into an engine."""
        books = []
        for book in self._books.values():
            instrument = book.instrument
            books.append(
                {
                    "symbol": instrument.symbol,
                    "tick_size": plain_text(instrument.tick_size),
                    "lot_size": plain_text(instrument.lot_size),
                    "min_quantity": None
                    if instrument.min_quantity is None
                    else plain_text(instrument.min_quantity),
                    "trade_count": book.trade_count,
                    "last_price": book.last_price,
                    "bids": [_order_to_dict(o) for o in book.bids.orders_in_priority()],
                    "asks": [_order_to_dict(o) for o in book.asks.orders_in_priority()],
                    "stops": [_order_to_dict(o) for o in book.stops.values()],
                }
            )
        return {
            "format": SNAPSHOT_FORMAT,
            "now": self._now,
            "seq": self._seq,
            "books": books,
            "closed_order_memory": self._closed_memory,
            "closed": {order_id: status.value for order_id, status in self._closed.items()},
        }

    @classmethod
    def restore(cls, snapshot: Mapping[str, Any]) -> MatchingEngine:
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported snapshot format {snapshot.get('format')!r}")
        engine = cls(closed_order_memory=snapshot.get("closed_order_memory"))
        engine._now = int(snapshot["now"])
        engine._seq = int(snapshot["seq"])
        for data in snapshot["books"]:
            min_quantity = data["min_quantity"]
            book = engine._open_book(
                Instrument(
                    data["symbol"],
                    Decimal(data["tick_size"]),
                    Decimal(data["lot_size"]),
                    None if min_quantity is None else Decimal(min_quantity),
                )
            )
            book.trade_count = int(data["trade_count"])
            book.last_price = data["last_price"]
            for side_name, side in (("bids", book.bids), ("asks", book.asks)):
                for order_data in data[side_name]:
                    order = _order_from_dict(order_data)
                    side.add_live(order)
                    engine._orders[order.order_id] = order
            for order_data in data["stops"]:
                order = _order_from_dict(order_data)
                book.add_stop(order)
                engine._orders[order.order_id] = order
        engine._expiry = [
            (order.expire_time, order.seq, order.order_id)
            for order in engine._orders.values()
            if order.expire_time is not None
        ]
        heapq.heapify(engine._expiry)
        engine._closed = {
            order_id: OrderStatus(status) for order_id, status in snapshot["closed"].items()
        }
        return engine


def _arrival(order: Order) -> tuple[int, str]:
    return order.seq, order.order_id


def _copy_order(order: Order) -> Order:
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
    )


_ORDER_FIELDS = (
    "order_id",
    "user_id",
    "instrument",
    "side",
    "order_type",
    "price",
    "quantity",
    "remaining",
    "filled",
    "time_in_force",
    "post_only",
    "stp",
    "expire_time",
    "max_slippage_bps",
    "stop_price",
    "seq",
    "triggered",
)


def _order_to_dict(order: Order) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(order, name) for name in _ORDER_FIELDS}
    for name in ("side", "order_type", "time_in_force", "stp"):
        data[name] = data[name].value
    return data


def _order_from_dict(data: Mapping[str, Any]) -> Order:
    side = Side(data["side"])
    # The order's fixed terms, as accepted (the time of acceptance is not kept).
    terms = OrderAccepted(
        data["order_id"],
        data["user_id"],
        data["instrument"],
        side,
        OrderType(data["order_type"]),
        data["price"],
        data["quantity"],
        TimeInForce(data["time_in_force"]),
        data["post_only"],
        SelfTradePrevention(data["stp"]),
        data["expire_time"],
        data["max_slippage_bps"],
        data["stop_price"],
        0,
    )
    return Order(
        terms,
        data["order_id"],
        data["user_id"],
        data["instrument"],
        side is _BUY,
        data["price"],
        data["quantity"],
        data["remaining"],
        data["seq"],
        data["triggered"],
        False,
    )
