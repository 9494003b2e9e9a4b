"""What the matching engine holds, and the bookkeeping every part of it shares.

`EngineState` is one book per instrument, every open order by id, the final status of the
order ids the engine has closed, the queue of GTD expiries, the engine clock and, with book
deltas on, the books whose levels the command being handled has touched. The
functions in `domain.order_lifecycle` and `domain.matching` change it while handling a
command; `domain.snapshot` saves and loads it; `domain.engine.MatchingEngine` owns one.
"""

from __future__ import annotations

from itertools import islice
from typing import Final

from domain.accounts import Accounts
from domain.book import OrderBook
from domain.book_deltas import LevelMarks
from domain.events import Event, OrderCancelled
from domain.instruments import Instrument, InstrumentStatus
from domain.orders import Order, OrderStatus

_CANCELLED: Final = OrderStatus.CANCELLED
# Classes called on the hot path, as Final names: the compiled build then reads each from
# a C static instead of looking it up in the module's globals at every call.
_OrderCancelled: Final = OrderCancelled


class EngineState:
    """The engine's whole state; change it only while handling a command."""

    __slots__ = (
        "accounts",
        "arrivals",
        "asset_precisions",
        "book_deltas",
        "books_by_symbol",
        "closed_order_memory",
        "closed_status_by_id",
        "expiry_queue",
        "instruments_by_symbol",
        "not_trading",
        "now",
        "open_orders_by_id",
        "touched_books",
    )

    def __init__(self, closed_order_memory: int | None = None) -> None:
        # How many closed order ids to remember (None: all); see MatchingEngine.
        self.closed_order_memory = closed_order_memory
        self.books_by_symbol: dict[str, OrderBook] = {}
        self.instruments_by_symbol: dict[str, Instrument] = {}
        # Open orders: resting on a book or waiting stops.
        self.open_orders_by_id: dict[str, Order] = {}
        # Final status of every order id the engine has closed, oldest first (dict order):
        # it answers DUPLICATE_ORDER_ID and ORDER_CLOSED.
        self.closed_status_by_id: dict[str, OrderStatus] = {}
        # A heap of (expire_time, seq, order_id) of GTD orders; entries of orders closed
        # meanwhile are skipped when they come up.
        self.expiry_queue: list[tuple[int, int, str]] = []
        # Engine time, nanoseconds since the Unix epoch.
        self.now = 0
        # Orders accepted so far: an order's `seq` is its arrival number.
        self.arrivals = 0
        # Whether the books record level changes (see `domain.book_deltas`); when they do,
        # the marks of the books the current command touched, in first-touch order. Only
        # ever non-empty while deltas are on.
        self.book_deltas = False
        self.touched_books: list[LevelMarks] = []
        # Balances, holds and settlement (`domain.accounts`); None while accounts are off,
        # and then the engine matches as if money did not exist.
        self.accounts: Accounts | None = None
        # Every asset the engine knows, with its precision (`domain.assets`).
        self.asset_precisions: dict[str, int] = {}
        # Venue controls: the status of every instrument that is not TRADING (so the hot
        # path tests an empty dict).
        self.not_trading: dict[str, InstrumentStatus] = {}

    def open_book(self, instrument: Instrument) -> OrderBook:
        book = self.books_by_symbol[instrument.symbol] = OrderBook(instrument)
        self.instruments_by_symbol[instrument.symbol] = instrument
        if self.book_deltas:
            self._mark_levels_of(book)
        return book

    def turn_on_book_deltas(self) -> None:
        """From now on every book (and every book opened later) records level changes."""
        self.book_deltas = True
        for book in self.books_by_symbol.values():
            self._mark_levels_of(book)

    def _mark_levels_of(self, book: OrderBook) -> None:
        book.bids.marks = book.asks.marks = LevelMarks(book, self.touched_books)

    def take_off(self, book: OrderBook, order: Order) -> None:
        """Remove an open order from wherever it waits (book level or stop list)."""
        if order.live:
            (book.bids if order.is_buy else book.asks).remove(order)
        else:
            book.remove_stop(order.order_id)
        del self.open_orders_by_id[order.order_id]

    def close_cancelled(
        self, book: OrderBook, order: Order, reason: str, events: list[Event]
    ) -> None:
        """Close an order that is off the book (or never on it) as cancelled for `reason`."""
        order_id = order.order_id
        self.open_orders_by_id.pop(order_id, None)
        self.closed_status_by_id[order_id] = _CANCELLED
        events.append(
            _OrderCancelled(order_id, book.symbol, reason, order.remaining, order.filled, self.now)
        )
        if self.accounts is not None:
            self.release_hold(book, order, events)

    def release_hold(self, book: OrderBook, order: Order, events: list[Event]) -> None:
        """With accounts on: release all an order that closes holds."""
        accounts = self.accounts
        if accounts is not None:
            accounts.release_all(accounts.money_by_symbol[book.symbol], order, events, self.now)

    def forget_oldest_closed(self) -> None:
        """Keep at most `closed_order_memory` closed order ids, dropping the longest closed."""
        memory = self.closed_order_memory
        if memory is None:
            return
        closed = self.closed_status_by_id
        excess = len(closed) - memory
        if excess > 0:
            for order_id in list(islice(closed, excess)):
                del closed[order_id]
