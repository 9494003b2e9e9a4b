"""Book level deltas: the net change each command makes to a book's levels, as events.

While book deltas are on, each book has a `LevelMarks` shared by its two sides, and every
change to a level's live total or count is preceded by `LevelMarks.mark`, which remembers
the level's (total, count) the first time the command touches it. At the end of the
command `append_book_deltas` compares each touched level with what it is now and turns the
differences into one `BookLevelsChanged` per book, numbered by the book's delta sequence.

Marking only the first touch keeps the cost per change to a dict lookup, and comparing
at the end makes an incoming order's passing presence (rested, then taken, within one
command) invisible. With deltas off the sides hold no marks and nothing is recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from domain.events import BookLevelsChanged, Event, LevelChanged
from domain.orders import Side

if TYPE_CHECKING:
    from domain.book import BookSide, OrderBook

_BUY: Final = Side.BUY
_SELL: Final = Side.SELL


class LevelMarks:
    """One book's levels touched by the command being handled, with their state before."""

    __slots__ = ("before", "book", "touched_books")

    def __init__(self, book: OrderBook, touched_books: list[LevelMarks]) -> None:
        self.book = book
        # Priority key -> (total, count) before the command; (0, 0): there was no level.
        # Prices are positive, so the key alone tells the side: bids (-price) are
        # negative, asks (+price) positive, and sorted keys are bids then asks, each best
        # first: the order of a delta's levels.
        self.before: dict[int, tuple[int, int]] = {}
        # The engine's list of books touched by this command, in first-touch order.
        self.touched_books = touched_books

    def mark(self, side: BookSide, key: int) -> None:
        """Call before changing the level at `key` on `side` (or creating it)."""
        before = self.before
        if key in before:
            return
        if not before:
            self.touched_books.append(self)
        level = side.levels.get(key)
        before[key] = (0, 0) if level is None else (level.total, level.count)


def append_book_deltas(touched_books: list[LevelMarks], events: list[Event], now: int) -> None:
    """Append one event per touched book whose levels changed net, in first-touch order;
    the marks are cleared for the next command. (Runs after most commands when deltas are
    on, so a single touched level is not sorted.)"""
    for marks in touched_books:
        book = marks.book
        before = marks.before
        bid_levels = book.bids.levels
        ask_levels = book.asks.levels
        changed: list[LevelChanged] = []
        for key in sorted(before) if len(before) > 1 else before:
            total, count = before[key]
            if key > 0:
                level = ask_levels.get(key)
                side, price = _SELL, key
            else:
                level = bid_levels.get(key)
                side, price = _BUY, -key
            if level is None:
                if count:
                    changed.append(LevelChanged(side, price, 0, 0))
            elif level.total != total or level.count != count:
                changed.append(LevelChanged(side, price, level.total, level.count))
        before.clear()
        if changed:
            book.delta_sequence = sequence = book.delta_sequence + 1
            events.append(BookLevelsChanged(book.symbol, sequence, tuple(changed), now))
    touched_books.clear()
