"""Book level deltas: the net change each command makes to a book's levels, as events.

While book deltas are on, each book has a `LevelMarks` shared by its two sides, and every
change to a level's live total or count is preceded by `LevelMarks.mark`, which records on
the level its (total, count) the first time the command touches it. At the end of the
command `append_book_deltas` compares each touched level's price with what is there now
and turns the differences into one `BookLevelsChanged` per book, numbered by the book's
delta sequence.

Marking only the first touch keeps the cost per change to a flag test, and comparing
at the end makes an incoming order's passing presence (rested, then taken, within one
command) invisible. With deltas off the sides hold no marks and nothing is recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from domain.events import BookLevelsChanged, Event, LevelChanged
from domain.orders import Side

if TYPE_CHECKING:
    from domain.book import Level, OrderBook

_BUY: Final = Side.BUY
_SELL: Final = Side.SELL
# Classes called on the hot path, as Final names: the compiled build then reads each from
# a C static instead of looking it up in the module's globals at every call.
_BookLevelsChanged: Final = BookLevelsChanged
_LevelChanged: Final = LevelChanged


class LevelMarks:
    """One book's levels touched by the command being handled, with their state before."""

    __slots__ = ("book", "levels", "touched_books")

    def __init__(self, book: OrderBook, touched_books: list[LevelMarks]) -> None:
        self.book = book
        # The levels this command changed, in first-touch order; each keeps its (total,
        # count) from before in `total_before`/`count_before`. A level emptied and made
        # again at the same price within the command appears twice (two Level objects):
        # the first holds the state before.
        self.levels: list[Level] = []
        # The engine's list of books touched by this command, in first-touch order.
        self.touched_books = touched_books

    def mark(self, level: Level) -> None:
        """Call before changing `level`'s total or count (just after creating it)."""
        if level.marked:
            return
        level.marked = True
        level.total_before = level.total
        level.count_before = level.count
        levels = self.levels
        if not levels:
            self.touched_books.append(self)
        levels.append(level)


def _change(book: OrderBook, key: int, total: int, count: int) -> LevelChanged | None:
    """The level at priority `key` now, if it is not (`total`, `count`) any more."""
    # Prices are positive, so the key tells the side: bids (-price) are negative.
    if key > 0:
        level = book.asks.levels.get(key)
        side, price = _SELL, key
    else:
        level = book.bids.levels.get(key)
        side, price = _BUY, -key
    if level is None:
        return _LevelChanged(side, price, 0, 0) if count else None
    if level.total != total or level.count != count:
        return _LevelChanged(side, price, level.total, level.count)
    return None


def append_book_deltas(touched_books: list[LevelMarks], events: list[Event], now: int) -> None:
    """Append one event per touched book whose levels changed net, in first-touch order;
    the marks are cleared for the next command. (Runs after most commands when deltas are
    on, so the common single touched level takes a path of its own.)"""
    for marks in touched_books:
        book = marks.book
        levels = marks.levels
        if len(levels) == 1:
            # One level object at its price this command, so it is the price's level now
            # unless it emptied (an empty level always leaves the book: (0, 0) then).
            level = levels[0]
            level.marked = False
            levels.clear()
            if level.total != level.total_before or level.count != level.count_before:
                only = _LevelChanged(
                    _SELL if level.key > 0 else _BUY, level.price, level.total, level.count
                )
                book.delta_sequence = sequence = book.delta_sequence + 1
                events.append(_BookLevelsChanged(book.symbol, sequence, (only,), now))
            continue
        # Sorted keys are bids then asks, each best first: the order of a delta's levels.
        before: dict[int, tuple[int, int]] = {}
        for level in levels:
            level.marked = False
            if level.key not in before:
                before[level.key] = (level.total_before, level.count_before)
        levels.clear()
        changed: list[LevelChanged] = []
        for key in sorted(before):
            total, count = before[key]
            change = _change(book, key, total, count)
            if change is not None:
                changed.append(change)
        if changed:
            book.delta_sequence = sequence = book.delta_sequence + 1
            events.append(_BookLevelsChanged(book.symbol, sequence, tuple(changed), now))
    touched_books.clear()
