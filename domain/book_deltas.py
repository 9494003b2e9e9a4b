"""Book level deltas: the net change each command makes to a book's levels, as events.

While book deltas are on, each book has a `LevelMarks` shared by its two sides, and every
change to a level's live total or count is preceded by `LevelMarks.mark`, which remembers
the level's (total, count) the first time the command touches it. At the end of the
command `take_book_deltas` compares each touched level with what it is now and turns the
differences into one `BookLevelsChanged` per book, numbered by the book's delta sequence.

Marking only the first touch keeps the cost per change to a dict lookup, and comparing
at the end makes an incoming order's passing presence (rested, then taken, within one
command) invisible. With deltas off the sides hold no marks and nothing is recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from domain.events import BookLevelsChanged, LevelChanged
from domain.orders import Side

if TYPE_CHECKING:
    from domain.book import BookSide, OrderBook

_BUY = Side.BUY
_SELL = Side.SELL


class LevelMarks:
    """One book's levels touched by the command being handled, with their state before."""

    __slots__ = ("before", "book", "touched_books")

    def __init__(self, book: OrderBook, touched_books: list[LevelMarks]) -> None:
        self.book = book
        # (side sign, priority key) -> (total, count) before the command; (0, 0): no level.
        self.before: dict[tuple[int, int], tuple[int, int]] = {}
        # The engine's list of books touched by this command, in first-touch order.
        self.touched_books = touched_books

    def mark(self, side: BookSide, key: int) -> None:
        """Call before changing the level at `key` on `side` (or creating it)."""
        before = self.before
        place = (side.sign, key)
        if place in before:
            return
        if not before:
            self.touched_books.append(self)
        level = side.levels.get(key)
        before[place] = (0, 0) if level is None else (level.total, level.count)


def take_book_deltas(touched_books: list[LevelMarks], now: int) -> list[BookLevelsChanged]:
    """One event per touched book whose levels changed net, in first-touch order; the
    marks are cleared for the next command."""
    events: list[BookLevelsChanged] = []
    for marks in touched_books:
        book = marks.book
        changed: list[LevelChanged] = []
        # Sorted (sign, key): bids (-1) before asks (+1), each best (smallest key) first.
        for place in sorted(marks.before):
            sign, key = place
            level = (book.asks if sign > 0 else book.bids).levels.get(key)
            after = (0, 0) if level is None else (level.total, level.count)
            if after != marks.before[place]:
                side = _SELL if sign > 0 else _BUY
                changed.append(LevelChanged(side, sign * key, after[0], after[1]))
        marks.before.clear()
        if changed:
            book.delta_sequence += 1
            events.append(BookLevelsChanged(book.symbol, book.delta_sequence, tuple(changed), now))
    touched_books.clear()
    return events
