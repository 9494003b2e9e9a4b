"""One instrument's order book: two sides of sorted price levels, a FIFO queue per level.

Each side keys its levels by a *priority key* (asks: price, bids: -price) so that on both
sides the best level is the smallest key and "crosses a limit" is `key <= limit_key`; the
matching loop is then written once for both sides. The best key is cached so the hot path
rarely touches the sorted list. Cancels are O(1) plus, when a level empties, an O(log n)
removal: the cancelled order is only flagged (`live = False`) and its queue drops it when
it reaches the front.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from sortedcontainers import SortedList  # type: ignore[import-untyped]

from domain.instruments import Instrument
from domain.orders import Order


class Level:
    """Orders resting at one price, oldest first; `total` and `count` cover live ones."""

    __slots__ = ("count", "orders", "price", "total")

    def __init__(self, price: int) -> None:
        self.price = price
        self.orders: deque[Order] = deque()
        self.total = 0
        self.count = 0

    def live_orders(self) -> Iterator[Order]:
        return (order for order in self.orders if order.live)


class BookSide:
    """The levels of one side, keyed by priority key (smaller is better)."""

    __slots__ = ("best", "keys", "levels", "sign")

    def __init__(self, sign: int) -> None:
        self.sign = sign  # +1 for asks, -1 for bids: key = sign * price
        self.levels: dict[int, Level] = {}
        self.keys: SortedList = SortedList()
        self.best: int | None = None

    def add_live(self, order: Order) -> None:
        """Append an order at the tail of its price level; it becomes `live`."""
        price = order.price
        assert price is not None
        key = self.sign * price
        level = self.levels.get(key)
        if level is None:
            level = self.levels[key] = Level(price)
            self.keys.add(key)
            best = self.best
            if best is None or key < best:
                self.best = key
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
        order.live = False
        level.total -= order.remaining
        level.count -= 1
        if level.count == 0:
            self.drop_level(key)

    def drop_level(self, key: int) -> None:
        del self.levels[key]
        keys = self.keys
        keys.remove(key)
        if key == self.best:
            self.best = keys[0] if keys else None

    def best_price(self) -> int | None:
        best = self.best
        return None if best is None else self.levels[best].price

    def iter_levels(self, limit_key: int | None = None) -> Iterator[Level]:
        """Levels best first, optionally only those with key <= limit_key."""
        levels = self.levels
        for key in self.keys.irange(maximum=limit_key):
            yield levels[key]

    def orders_in_priority(self) -> Iterator[Order]:
        for level in self.iter_levels():
            yield from level.live_orders()

    def depth(self, depth: int) -> list[tuple[int, int, int]]:
        levels = self.levels
        return [
            (levels[key].price, levels[key].total, levels[key].count)
            for key in self.keys.islice(0, depth)
        ]


class OrderBook:
    """Everything the engine keeps per instrument."""

    __slots__ = (
        "asks",
        "bids",
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
        self.stops: dict[str, Order] = {}
        self.last_price: int | None = None
        self.trade_count = 0

    def side_of(self, order: Order) -> BookSide:
        return self.bids if order.is_buy else self.asks

    def opposite_of(self, order: Order) -> BookSide:
        return self.asks if order.is_buy else self.bids
