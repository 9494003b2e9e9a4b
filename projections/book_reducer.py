"""Pure reducer of the aggregated books: engine events in, level changes out.

The engine does not say "this much now rests at this price", so the resting quantities are
derived: every live order is tracked (side, price, remaining), an incoming order (accepted,
a triggered stop, an amend) is *matching* until an event that cannot belong to its run
arrives, and only then does its remainder go on the book. Every change is an addition to
a level (the trade's quantity off the maker, the remainder on or off), so the result does
not depend on how one atomic append orders its streams. The changes of one group (one log
transaction, i.e. one atomic append of the engine runner) are netted into one
`BookUpdate` per instrument, numbered by a contiguous per-instrument sequence: a subscriber
never sees a book crossed by an order that is still matching, and the numbering depends on
the log alone.

Quantities are exact `Decimal`s, parsed from the log's decimal strings.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from projections import log_events as ev
from projections.log_events import LogEvent, decimal_of, decimal_or_none, time_or_none
from projections.views import BUY, SELL, BookUpdate, LevelChange, PriceLevel, TradeView

DEFAULT_RECENT_TRADES = 100
ZERO = Decimal(0)

_STOP_TYPES = frozenset({"STOP_LIMIT", "STOP_MARKET"})
_MARKET_TYPES = frozenset({"MARKET", "STOP_MARKET"})
# Events that belong to an incoming order's matching run: they never end it.
_MATCHING_EVENTS = frozenset(
    {ev.TRADE_EXECUTED, ev.ORDER_PARTIALLY_FILLED, ev.ORDER_FILLED, ev.ORDER_CANCELLED}
)


@dataclass
class TrackedOrder:
    """A live order as the book view needs it."""

    order_id: str
    instrument: str
    side: str
    price: Decimal | None  # None for market orders
    remaining: Decimal
    order_type: str
    on_book: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "i": self.instrument,
            "s": self.side,
            "p": None if self.price is None else str(self.price),
            "r": str(self.remaining),
            "t": self.order_type,
            "b": self.on_book,
        }

    @classmethod
    def from_json(cls, order_id: str, data: dict[str, Any]) -> TrackedOrder:
        return cls(
            order_id=order_id,
            instrument=data["i"],
            side=data["s"],
            price=decimal_or_none(data["p"]),
            remaining=Decimal(data["r"]),
            order_type=data["t"],
            on_book=bool(data["b"]),
        )


@dataclass
class Level:
    quantity: Decimal
    order_count: int


@dataclass
class InstrumentBook:
    """One instrument's aggregated levels, sequence, last price and recent trades."""

    instrument: str
    bids: dict[Decimal, Level] = field(default_factory=dict)
    asks: dict[Decimal, Level] = field(default_factory=dict)
    sequence: int = 0
    position: str = ""
    last_price: Decimal | None = None
    recent_trades: deque[TradeView] = field(default_factory=deque)

    def side(self, side: str) -> dict[Decimal, Level]:
        return self.bids if side == BUY else self.asks

    def levels(self, side: str, depth: int = 0) -> tuple[PriceLevel, ...]:
        book_side = self.side(side)
        prices = sorted(book_side, reverse=side == BUY)
        if depth > 0:
            prices = prices[:depth]
        return tuple(
            PriceLevel(price, book_side[price].quantity, book_side[price].order_count)
            for price in prices
        )


@dataclass
class BookChanges:
    """What a stretch of events changed, for the Redis writer and the live feed."""

    updates: list[BookUpdate] = field(default_factory=list)
    changed_orders: set[str] = field(default_factory=set)
    trades: list[TradeView] = field(default_factory=list)
    touched_instruments: set[str] = field(default_factory=set)


class BooksReducer:
    """Tracks live orders and aggregated levels of every instrument."""

    def __init__(self, recent_trades: int = DEFAULT_RECENT_TRADES) -> None:
        self.orders: dict[str, TrackedOrder] = {}
        self.books: dict[str, InstrumentBook] = {}
        self.recent_trades_cap = recent_trades
        self._matching: TrackedOrder | None = None
        self._group_key: Any = None
        self._group_position = ""
        # Level state at the start of the current group, for netting: (instr, side, price).
        self._group_before: dict[tuple[str, str, Decimal], tuple[Decimal, int]] = {}
        self.changes = BookChanges()

    def book(self, instrument: str) -> InstrumentBook:
        book = self.books.get(instrument)
        if book is None:
            book = self.books[instrument] = InstrumentBook(instrument)
        return book

    def take_changes(self) -> BookChanges:
        """Close the open group and hand over everything changed since the last call."""
        self.end_group()
        changes, self.changes = self.changes, BookChanges()
        return changes

    # -- events ----------------------------------------------------------------------------

    def apply(self, event: LogEvent, group_key: Any = None) -> None:
        """Apply one event; `group_key` (the input's causation id) delimits netted updates."""
        handler = _HANDLERS.get(event.type)
        if handler is None:
            return
        key = group_key if group_key is not None else object()
        if key != self._group_key:
            self.end_group()
            self._group_key = key
        self._group_position = ev.position_token(event.position)
        if self._matching is not None and event.type not in _MATCHING_EVENTS:
            self._place_matching()
        handler(self, event)

    def apply_all(self, events: Iterable[LogEvent], group_key_of: Any = None) -> None:
        for event in events:
            self.apply(event, None if group_key_of is None else group_key_of(event))

    def end_group(self) -> None:
        """The incoming order's run is over: place its remainder, emit netted updates."""
        if self._matching is not None:
            self._place_matching()
        if self._group_before:
            self._emit_updates()
        self._group_key = None

    def _on_accepted(self, event: LogEvent) -> None:
        data = event.data
        order_id = ev.order_id_of(event)
        if order_id is None:
            return
        order_type = str(data.get("order_type") or data.get("type") or "LIMIT")
        order = TrackedOrder(
            order_id=order_id,
            instrument=str(data["instrument"]),
            side=str(data["side"]),
            price=None if order_type in _MARKET_TYPES else decimal_or_none(data.get("price")),
            remaining=decimal_of(data.get("quantity")),
            order_type=order_type,
        )
        self.orders[order_id] = order
        self.changes.changed_orders.add(order_id)
        if order_type not in _STOP_TYPES:
            self._matching = order

    def _on_stop_triggered(self, event: LogEvent) -> None:
        order = self._tracked(event)
        if order is not None:
            order.order_type = "MARKET" if order.order_type == "STOP_MARKET" else "LIMIT"
            if order.order_type == "MARKET":
                order.price = None
            self.changes.changed_orders.add(order.order_id)
            self._matching = order

    def _on_trade(self, event: LogEvent) -> None:
        data = event.data
        quantity = decimal_of(data["quantity"])
        instrument = str(data["instrument"])
        book = self.book(instrument)
        price = decimal_of(data["price"])
        book.last_price = price
        trade = TradeView(
            trade_id=str(data["trade_id"]),
            instrument=instrument,
            price=price,
            quantity=quantity,
            maker_order_id=str(data["maker_order_id"]),
            taker_order_id=str(data["taker_order_id"]),
            taker_side=str(data.get("taker_side") or ""),
            executed_at=time_or_none(data.get("executed_at")),
            maker_user_id=str(data.get("maker_user_id") or ""),
            taker_user_id=str(data.get("taker_user_id") or ""),
            position=ev.position_token(event.position),
        )
        book.recent_trades.appendleft(trade)
        while len(book.recent_trades) > self.recent_trades_cap:
            book.recent_trades.pop()
        self.changes.trades.append(trade)
        self.changes.touched_instruments.add(instrument)
        for order_id in (trade.maker_order_id, trade.taker_order_id):
            order = self.orders.get(order_id)
            if order is not None:
                self._reduce(order, quantity)

    def _on_filled(self, event: LogEvent) -> None:
        # The trade already took the quantity; this only makes sure the order is gone.
        order = self._tracked(event)
        if order is not None:
            self._remove(order)

    def _on_closed(self, event: LogEvent) -> None:
        """Cancelled, expired or rejected: whatever remains leaves the book."""
        order = self._tracked(event)
        if order is not None:
            self._remove(order)

    def _on_amended(self, event: LogEvent) -> None:
        order = self._tracked(event)
        if order is None:
            return
        data = event.data
        if order.on_book:
            self._add_level(order, -order.remaining, -1)
            order.on_book = False
        new_price = decimal_or_none(data.get("price"))
        if new_price is not None and order.order_type not in _MARKET_TYPES:
            order.price = new_price
        remaining = decimal_or_none(data.get("remaining_quantity"))
        if remaining is not None:
            order.remaining = remaining
        self.changes.changed_orders.add(order.order_id)
        if order.order_type in _STOP_TYPES:
            return
        # A cancel/replace re-enters the book, and may match at once if it lost priority.
        self._matching = order

    # -- helpers ---------------------------------------------------------------------------

    def _tracked(self, event: LogEvent) -> TrackedOrder | None:
        order_id = ev.order_id_of(event)
        return None if order_id is None else self.orders.get(order_id)

    def _reduce(self, order: TrackedOrder, quantity: Decimal) -> None:
        if order.on_book:
            self._add_level(order, -quantity, 0)
        order.remaining -= quantity
        self.changes.changed_orders.add(order.order_id)
        if order.remaining <= 0:
            self._remove(order)

    def _remove(self, order: TrackedOrder) -> None:
        if order.on_book and order.remaining > 0:
            self._add_level(order, -order.remaining, -1)
        elif order.on_book:
            self._add_level(order, ZERO, -1)
        order.on_book = False
        self.orders.pop(order.order_id, None)
        self.changes.changed_orders.add(order.order_id)
        if self._matching is order:
            self._matching = None

    def _place_matching(self) -> None:
        order, self._matching = self._matching, None
        if order is None or order.order_id not in self.orders:
            return
        if order.price is None or order.order_type in _STOP_TYPES:
            return  # market orders never rest; their remainder is cancelled by the engine
        if order.remaining > 0 and not order.on_book:
            order.on_book = True
            self._add_level(order, order.remaining, 1)
            self.changes.changed_orders.add(order.order_id)

    def _add_level(self, order: TrackedOrder, quantity: Decimal, count: int) -> None:
        assert order.price is not None
        book = self.book(order.instrument)
        side = book.side(order.side)
        key = (order.instrument, order.side, order.price)
        level = side.get(order.price)
        if key not in self._group_before:
            self._group_before[key] = (level.quantity, level.order_count) if level else (ZERO, 0)
        if level is None:
            level = side[order.price] = Level(ZERO, 0)
        level.quantity += quantity
        level.order_count += count
        if level.order_count <= 0 and level.quantity <= 0:
            del side[order.price]

    def _emit_updates(self) -> None:
        by_instrument: dict[str, list[LevelChange]] = {}
        for (instrument, side_name, price), before in sorted(
            self._group_before.items(), key=_change_order
        ):
            level = self.book(instrument).side(side_name).get(price)
            after = (level.quantity, level.order_count) if level else (ZERO, 0)
            if after == before:
                continue
            by_instrument.setdefault(instrument, []).append(
                LevelChange(side_name, price, after[0], after[1])
            )
        self._group_before = {}
        for instrument, level_changes in by_instrument.items():
            book = self.book(instrument)
            book.sequence += 1
            book.position = self._group_position
            self.changes.touched_instruments.add(instrument)
            self.changes.updates.append(
                BookUpdate(instrument, book.sequence, tuple(level_changes), self._group_position)
            )


def _change_order(item: tuple[tuple[str, str, Decimal], Any]) -> tuple[str, int, Decimal]:
    """Bids best first, then asks best first: a stable, readable order of changes."""
    (instrument, side, price), _ = item
    return (instrument, 0 if side == BUY else 1, -price if side == BUY else price)


_HANDLERS = {
    ev.ORDER_ACCEPTED: BooksReducer._on_accepted,
    ev.STOP_TRIGGERED: BooksReducer._on_stop_triggered,
    ev.TRADE_EXECUTED: BooksReducer._on_trade,
    ev.ORDER_FILLED: BooksReducer._on_filled,
    ev.ORDER_CANCELLED: BooksReducer._on_closed,
    ev.ORDER_EXPIRED: BooksReducer._on_closed,
    ev.ORDER_REJECTED: BooksReducer._on_closed,
    ev.ORDER_AMENDED: BooksReducer._on_amended,
}

__all__ = ["SELL", "BooksReducer", "InstrumentBook", "TrackedOrder"]
