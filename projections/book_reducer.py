"""Pure reducer of the aggregated books: the engine's level deltas and trades in.

The engine says what each input did to an instrument's resting levels
(`BookLevelsChanged`: the new quantity and order count of every level that changed, with a
per-instrument sequence that has no gap), so the book view only applies them: nothing is
re-derived from orders here. Each delta becomes one `BookUpdate` with the engine's
sequence, for the Redis writer and the live book stream alike. `TradeExecuted` gives the
last price and the recent trades.

A book's position (and its updates') is that of the last book event of the log transaction
its delta came in: one input's trades and delta are appended together, in stream-name
order, so the delta may stand before the trades it accounts for.

A delta whose sequence is not the next one is refused (`BookSequenceGap`): a view that
skipped one would show a wrong book forever, so its builder stops loudly instead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from projections.log_events import LogEvent, position_token, record_of, trade_view
from projections.views import BUY, SELL, BookUpdate, LevelChange, PriceLevel, TradeView
from server.log_contract import records as rec

DEFAULT_RECENT_TRADES = 100


class BookSequenceGap(ValueError):
    """A book delta that does not follow the last one applied."""

    def __init__(self, instrument: str, expected: int, received: int) -> None:
        super().__init__(f"{instrument}: book delta {received} after {expected - 1}")
        self.instrument = instrument
        self.expected = expected
        self.received = received


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
    trades: list[TradeView] = field(default_factory=list)
    touched_instruments: set[str] = field(default_factory=set)


class BooksReducer:
    """The aggregated levels, sequence, last price and recent trades of every instrument."""

    def __init__(self, recent_trades: int = DEFAULT_RECENT_TRADES) -> None:
        self.books: dict[str, InstrumentBook] = {}
        self.recent_trades_cap = recent_trades
        self.changes = BookChanges()
        # The open log transaction: its id, its last book event's position, and the deltas
        # met in it, whose updates are made when it ends (they carry that position).
        self._group: Any = None
        self._group_position = ""
        self._group_deltas: list[rec.BookLevelsChanged] = []

    def book(self, instrument: str) -> InstrumentBook:
        book = self.books.get(instrument)
        if book is None:
            book = self.books[instrument] = InstrumentBook(instrument)
        return book

    def take_changes(self) -> BookChanges:
        """Close the open transaction and hand over everything changed since the last call."""
        self._end_group()
        changes, self.changes = self.changes, BookChanges()
        return changes

    def apply(self, event: LogEvent) -> None:
        handler = _HANDLERS.get(event.type)
        if handler is None:
            return
        group = getattr(event.position, "tx", None)
        if group is None or group != self._group:
            self._end_group()
            self._group = group
        self._group_position = position_token(event.position)
        handler(self, record_of(event), event.position)

    def _end_group(self) -> None:
        for delta in self._group_deltas:
            self.book(delta.instrument).position = self._group_position
            self.changes.updates.append(
                BookUpdate(
                    delta.instrument,
                    delta.sequence,
                    tuple(
                        LevelChange(
                            level.side.value, level.price, level.quantity, level.order_count
                        )
                        for level in delta.levels
                    ),
                    self._group_position,
                )
            )
        self._group_deltas = []
        self._group = None

    def _on_levels_changed(self, record: Any, position: Any) -> None:
        delta: rec.BookLevelsChanged = record
        book = self.book(delta.instrument)
        if delta.sequence != book.sequence + 1:
            raise BookSequenceGap(delta.instrument, book.sequence + 1, delta.sequence)
        for level in delta.levels:
            side = book.side(level.side.value)
            if level.order_count > 0:
                side[level.price] = Level(level.quantity, level.order_count)
            else:
                side.pop(level.price, None)
        book.sequence = delta.sequence
        self._group_deltas.append(delta)
        self.changes.touched_instruments.add(delta.instrument)

    def _on_trade(self, record: Any, position: Any) -> None:
        executed: rec.TradeExecuted = record
        book = self.book(executed.instrument)
        book.last_price = executed.price
        trade = trade_view(executed, position)
        book.recent_trades.appendleft(trade)
        while len(book.recent_trades) > self.recent_trades_cap:
            book.recent_trades.pop()
        self.changes.trades.append(trade)
        self.changes.touched_instruments.add(executed.instrument)


_HANDLERS = {
    rec.BookLevelsChanged.__name__: BooksReducer._on_levels_changed,
    rec.TradeExecuted.__name__: BooksReducer._on_trade,
}

__all__ = ["SELL", "BookSequenceGap", "BooksReducer", "InstrumentBook"]
