"""One instrument's order book: two sides of sorted price levels, a FIFO queue per level.

Each side keys its levels by a *priority key* (asks: price, bids: -price) so that on both
sides the best level is the smallest key and "crosses a limit" is `key <= limit_key`; the
matching loop is then written once for both sides. The best key is cached so the hot path
rarely touches the sorted keys (`domain.sorted_keys`). Cancels are O(1) plus, when a level
empties, a removal bounded by the keys' chunk size: the cancelled order is only flagged
(`live = False`) and its queue drops it when it reaches the front.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mypy_extensions import mypyc_attr
from sortedcontainers import SortedList  # type: ignore[import-untyped]

from domain.instruments import Instrument
from domain.orders import Order
from domain.sorted_keys import SortedKeys

if TYPE_CHECKING:
    from domain.book_deltas import LevelMarks


# acyclic: a level holds its queue, never anything that holds the level (see Order).
@mypyc_attr(acyclic=True)
class Level:
    """Orders resting at one price, oldest first; `total` and `count` cover live ones.

    With book deltas on, `marked` says the command being handled has changed the level,
    and `total_before`/`count_before` hold what it was before (see `domain.book_deltas`).
    """

    __slots__ = (
        "count",
        "count_before",
        "key",
        "marked",
        "orders",
        "price",
        "total",
        "total_before",
    )

    def __init__(self, price: int, key: int) -> None:
        self.price = price
        self.key = key  # the priority key: +price on the asks, -price on the bids
        self.orders: deque[Order] = deque()
        self.total = 0
        self.count = 0
        self.marked = False
        self.total_before = 0
        self.count_before = 0

    def live_orders(self) -> Iterator[Order]:
        for order in self.orders:
            if order.live:
                yield order


class BookSide:
    """The levels of one side, keyed by priority key (smaller is better)."""

    __slots__ = ("best", "keys", "levels", "marks", "sign")

    def __init__(self, sign: int) -> None:
        self.sign = sign  # +1 for asks, -1 for bids: key = sign * price
        self.levels: dict[int, Level] = {}
        self.keys = SortedKeys()
        self.best: int | None = None
        # With book deltas on: where to mark a level before changing its total or count
        # (every such change, here and in the engine, must call it first; a level just
        # created counts as empty before). None: off.
        self.marks: LevelMarks | None = None

    def add_live(self, order: Order) -> None:
        """Append an order at the tail of its price level; it becomes `live`."""
        price = order.price
        assert price is not None
        key = self.sign * price
        level = self.levels.get(key)
        if level is None:
            level = self.levels[key] = Level(price, key)
            self.keys.add(key)
            best = self.best
            if best is None or key < best:
                self.best = key
        marks = self.marks
        if marks is not None:
            marks.mark(level)
        order.live = True
        level.orders.append(order)
        level.total += order.remaining
        level.count += 1

    def remove(self, order: Order) -> None:
        """Take a live order off the book (lazily: it is flagged, its queue skips it)."""
        price = order.price
        assert price is not None
        key = self.sign * price
        level = self.levels[key]
        marks = self.marks
        if marks is not None:
            marks.mark(level)
        order.live = False
        level.total -= order.remaining
        level.count -= 1
        if level.count == 0:
            self.drop_level(key)

    def drop_level(self, key: int) -> None:
        """Forget an emptied level (its last change was marked by whoever emptied it)."""
        del self.levels[key]
        keys = self.keys
        keys.remove(key)
        if key == self.best:
            self.best = keys.first()

    def iter_levels(self, limit_key: int | None = None) -> Iterator[Level]:
        """Levels best first, optionally only those with key <= limit_key."""
        levels = self.levels
        for key in self.keys.up_to(limit_key):
            yield levels[key]

    def orders_in_priority(self) -> Iterator[Order]:
        for level in self.iter_levels():
            yield from level.live_orders()

    def depth(self, depth: int) -> list[tuple[int, int, int]]:
        levels = self.levels
        return [
            (levels[key].price, levels[key].total, levels[key].count)
            for key in self.keys.first_n(depth)
        ]


class OrderBook:
    """Everything the engine keeps per instrument."""

    __slots__ = (
        "_buy_stops",
        "_sell_stops",
        "_stop_arrivals",
        "_stop_keys",
        "asks",
        "bids",
        "delta_sequence",
        "instrument",
        "last_price",
        "min_lots",
        "stops",
        "symbol",
        "trade_count",
    )

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.symbol = instrument.symbol
        # At least one lot, so the engine's fast path checks quantity once for both rules
        # (positive and minimum); the slow path then names the right reason.
        self.min_lots = max(1, instrument.min_lots)
        self.bids = BookSide(-1)
        self.asks = BookSide(1)
        # Waiting stops in arrival order (dict order); the oldest qualifying one triggers.
        # Change them only through add_stop / remove_stop, which keep the indexes below.
        self.stops: dict[str, Order] = {}
        # The same stops by trigger price, so that finding those whose condition holds costs
        # O(log n + how many hold) instead of a scan of every waiting stop at each move of
        # the last price. Buys trigger at last >= stop: (stop, arrival, id), lowest first;
        # sells at last <= stop: (-stop, arrival, id), highest stop first.
        self._buy_stops = SortedList()
        self._sell_stops = SortedList()
        self._stop_keys: dict[str, tuple[int, int, str]] = {}
        self._stop_arrivals = 0
        self.last_price: int | None = None
        self.trade_count = 0
        # How many BookLevelsChanged this book has emitted (the last one's sequence).
        self.delta_sequence = 0

    def add_stop(self, order: Order) -> None:
        """A stop starts waiting (the youngest of all)."""
        stop_price = order.stop_price
        assert stop_price is not None
        self._stop_arrivals += 1
        order_id = order.order_id
        if order.is_buy:
            key = (stop_price, self._stop_arrivals, order_id)
            self._buy_stops.add(key)
        else:
            key = (-stop_price, self._stop_arrivals, order_id)
            self._sell_stops.add(key)
        self._stop_keys[order_id] = key
        self.stops[order_id] = order

    def remove_stop(self, order_id: str) -> Order | None:
        """Stop waiting (triggered, cancelled, expired); None if it was not waiting."""
        order = self.stops.pop(order_id, None)
        if order is None:
            return None
        key = self._stop_keys.pop(order_id)
        (self._buy_stops if order.is_buy else self._sell_stops).remove(key)
        return order

    def would_take(self, is_buy: bool, price: int) -> bool:
        """Whether a limit order at `price` would cross the opposite side's best level."""
        if is_buy:
            best = self.asks.best
            return best is not None and best <= price
        best = self.bids.best
        return best is not None and best <= -price

    def oldest_triggered_stop(self, last: int) -> Order | None:
        """The oldest waiting stop whose condition holds at last price `last`, if any."""
        oldest: tuple[int, str] | None = None  # (arrival, order id)
        for stop_price, arrival, order_id in self._buy_stops:
            if stop_price > last:
                break
            if oldest is None or arrival < oldest[0]:
                oldest = (arrival, order_id)
        for negated_stop, arrival, order_id in self._sell_stops:
            if -negated_stop < last:
                break
            if oldest is None or arrival < oldest[0]:
                oldest = (arrival, order_id)
        return None if oldest is None else self.stops[oldest[1]]
