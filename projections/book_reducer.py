"""Pure reducer of the aggregated books: engine events in, level changes out.

The engine does not say "this much now rests at this price", so the resting quantities are
derived: every live order is tracked (side, price, total, remaining). Events only change
orders; the book moves at the end of a group (one log transaction: an atomic append of
the engine runner, holding whole inputs), when each touched order's remainder leaves the
level it sat on and, if the order is still live and not a market order or waiting stop,
goes onto the level of its current price. Within a group everything is a sum (fills off
`remaining`, amends as a change of total), so the result does not depend on how one
append orders its streams, and an order still matching never shows on the book. A
group's level changes are netted into one `BookUpdate` per instrument, numbered by a
contiguous per-instrument sequence that depends on the log alone.

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


@dataclass
class TrackedOrder:
    """A live order as the book view needs it."""

    order_id: str
    instrument: str
    side: str
    price: Decimal | None  # None for market orders
    quantity: Decimal  # total, filled part included (what an amend replaces)
    remaining: Decimal
    order_type: str
    on_book: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "i": self.instrument,
            "s": self.side,
            "p": None if self.price is None else str(self.price),
            "q": str(self.quantity),
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
            quantity=Decimal(data["q"]),
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


@dataclass(frozen=True, slots=True)
class _Placement:
    """Where an order's remainder sat on the book when its group began (if it did)."""

    instrument: str
    side: str
    price: Decimal
    remaining: Decimal


class BooksReducer:
    """Tracks live orders and aggregated levels of every instrument."""

    def __init__(self, recent_trades: int = DEFAULT_RECENT_TRADES) -> None:
        self.orders: dict[str, TrackedOrder] = {}
        self.books: dict[str, InstrumentBook] = {}
        self.recent_trades_cap = recent_trades
        self._group_key: Any = None
        self._group_position = ""
        # Orders the open group touched, with their book placement when it began (None:
        # not on the book), and the ones it closed.
        self._touched: dict[str, _Placement | None] = {}
        self._closed: set[str] = set()
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
        """Apply one event; events with the same `group_key` (one log transaction) form one
        group, whose book changes are netted into one update per instrument."""
        handler = _HANDLERS.get(event.type)
        if handler is None:
            return
        key = group_key if group_key is not None else object()
        if key != self._group_key:
            self.end_group()
            self._group_key = key
        self._group_position = ev.position_token(event.position)
        handler(self, event)

    def apply_all(self, events: Iterable[LogEvent], group_key_of: Any = None) -> None:
        for event in events:
            self.apply(event, None if group_key_of is None else group_key_of(event))

    def end_group(self) -> None:
        """Move every touched order's remainder from where it was to where it is now."""
        if self._touched:
            before: dict[tuple[str, str, Decimal], tuple[Decimal, int]] = {}
            for order_id, placement in self._touched.items():
                if placement is not None:
                    self._add_level(
                        placement.instrument,
                        placement.side,
                        placement.price,
                        -placement.remaining,
                        -1,
                        before,
                    )
                order = self.orders.get(order_id)
                if order is None:
                    continue
                if order_id in self._closed or not order.instrument:
                    del self.orders[order_id]
                    continue
                order.on_book = _rests(order)
                if order.on_book:
                    assert order.price is not None
                    self._add_level(
                        order.instrument, order.side, order.price, order.remaining, 1, before
                    )
            self._emit_updates(before)
        self._touched = {}
        self._closed = set()
        self._group_key = None

    def _on_accepted(self, event: LogEvent) -> None:
        data = event.data
        order = self._touch(event)
        if order is None:
            return
        order_type = str(data.get("order_type") or data.get("type") or "LIMIT")
        quantity = decimal_of(data.get("quantity"))
        order.instrument = str(data["instrument"])
        order.side = str(data["side"])
        order.order_type = order_type
        order.price = None if order_type in _MARKET_TYPES else decimal_or_none(data.get("price"))
        # Fills met earlier in the group (another stream of the same append) already came
        # off `remaining`.
        order.remaining += quantity - order.quantity
        order.quantity = quantity

    def _on_stop_triggered(self, event: LogEvent) -> None:
        order = self._touch(event)
        if order is not None:
            order.order_type = "MARKET" if order.order_type == "STOP_MARKET" else "LIMIT"
            if order.order_type == "MARKET":
                order.price = None

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
            order = self._touch_id(order_id)
            order.remaining -= quantity

    def _on_closed(self, event: LogEvent) -> None:
        """Filled, cancelled, expired or rejected: the order leaves the book."""
        order = self._touch(event)
        if order is not None:
            self._closed.add(order.order_id)

    def _on_amended(self, event: LogEvent) -> None:
        order = self._touch(event)
        if order is None:
            return
        data = event.data
        new_price = decimal_or_none(data.get("price"))
        if new_price is not None and order.order_type not in _MARKET_TYPES:
            order.price = new_price
        new_quantity = decimal_or_none(data.get("quantity"))
        if new_quantity is not None:
            # A change of the total changes the remainder by as much. Applied as a delta,
            # not by copying `remaining_quantity`: within one append the trades before the
            # amend may come after it (another stream).
            order.remaining += new_quantity - order.quantity
            order.quantity = new_quantity

    # -- helpers ---------------------------------------------------------------------------

    def _touch(self, event: LogEvent) -> TrackedOrder | None:
        order_id = ev.order_id_of(event)
        return None if order_id is None else self._touch_id(order_id)

    def _touch_id(self, order_id: str) -> TrackedOrder:
        """The order, noting where it sat when the group began (created if unknown yet:
        its acceptance may come later in the group)."""
        order = self.orders.get(order_id)
        if order_id not in self._touched:
            placement = None
            if order is not None and order.on_book and order.price is not None:
                placement = _Placement(order.instrument, order.side, order.price, order.remaining)
            self._touched[order_id] = placement
        if order is None:
            order = self.orders[order_id] = TrackedOrder(order_id, "", "", None, ZERO, ZERO, "")
        self.changes.changed_orders.add(order_id)
        return order

    def _add_level(
        self,
        instrument: str,
        side_name: str,
        price: Decimal,
        quantity: Decimal,
        count: int,
        before: dict[tuple[str, str, Decimal], tuple[Decimal, int]],
    ) -> None:
        side = self.book(instrument).side(side_name)
        key = (instrument, side_name, price)
        level = side.get(price)
        if key not in before:
            before[key] = (level.quantity, level.order_count) if level else (ZERO, 0)
        if level is None:
            level = side[price] = Level(ZERO, 0)
        level.quantity += quantity
        level.order_count += count
        if level.order_count <= 0 and level.quantity <= 0:
            del side[price]

    def _emit_updates(self, before: dict[tuple[str, str, Decimal], tuple[Decimal, int]]) -> None:
        by_instrument: dict[str, list[LevelChange]] = {}
        for (instrument, side_name, price), was in sorted(before.items(), key=_change_order):
            level = self.book(instrument).side(side_name).get(price)
            now = (level.quantity, level.order_count) if level else (ZERO, 0)
            if now == was:
                continue
            by_instrument.setdefault(instrument, []).append(
                LevelChange(side_name, price, now[0], now[1])
            )
        for instrument, level_changes in by_instrument.items():
            book = self.book(instrument)
            book.sequence += 1
            book.position = self._group_position
            self.changes.touched_instruments.add(instrument)
            self.changes.updates.append(
                BookUpdate(instrument, book.sequence, tuple(level_changes), self._group_position)
            )


def _rests(order: TrackedOrder) -> bool:
    """After its group, a live order rests unless it is a market order or a waiting stop."""
    return (
        order.price is not None
        and order.order_type not in _STOP_TYPES
        and order.order_type not in _MARKET_TYPES
        and order.remaining > 0
    )


def _change_order(item: tuple[tuple[str, str, Decimal], Any]) -> tuple[str, int, Decimal]:
    """Bids best first, then asks best first: a stable, readable order of changes."""
    (instrument, side, price), _ = item
    return (instrument, 0 if side == BUY else 1, -price if side == BUY else price)


_HANDLERS = {
    ev.ORDER_ACCEPTED: BooksReducer._on_accepted,
    ev.STOP_TRIGGERED: BooksReducer._on_stop_triggered,
    ev.TRADE_EXECUTED: BooksReducer._on_trade,
    ev.ORDER_FILLED: BooksReducer._on_closed,
    ev.ORDER_CANCELLED: BooksReducer._on_closed,
    ev.ORDER_EXPIRED: BooksReducer._on_closed,
    ev.ORDER_REJECTED: BooksReducer._on_closed,
    ev.ORDER_AMENDED: BooksReducer._on_amended,
}

__all__ = ["SELL", "BooksReducer", "InstrumentBook", "TrackedOrder"]
