"""The yardstick of issue #16: a plain-Python limit order book that builds no events.

A `SortedDict` of price levels per side (keyed so the best level is the smallest key:
asks by price, bids by -price), a `deque` of resting orders per level, a `dict` of
resting orders by id, an O(1) lazy cancel (the order is flagged, its queue drops it when
it reaches the front; only an emptied level costs an O(log n) removal), and one fill tuple
(maker id, taker id, price, quantity) per match, returned in a list per order as the
engine returns its events per command (the caller keeps them or not). Price-time
priority at the maker's price; no self-trade prevention, no time in force beyond GTC limit
and market orders, no events.

`bench.side_by_side` times it against `domain.engine.MatchingEngine` on the same stream.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from sortedcontainers import SortedDict  # type: ignore[import-untyped]

# A resting order: [remaining lots (0 once cancelled), order id]; a level: [live count, queue].
Entry = list[Any]
Fill = tuple[str, str, int, int]
_BPS = 10_000


class ReferenceBook:
    __slots__ = ("asks", "bids", "resting")

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()  # -price -> level
        self.asks: SortedDict = SortedDict()  # price -> level
        # order id -> (entry, its side's levels, key, level)
        self.resting: dict[str, tuple[Entry, SortedDict, int, Entry]] = {}

    def limit(self, order_id: str, is_buy: bool, price: int, quantity: int) -> list[Fill]:
        """A GTC limit order: match up to `price`, rest what remains; its fills."""
        fills: list[Fill] = []
        remaining = self._take(order_id, is_buy, price if is_buy else -price, quantity, fills)
        if remaining:
            own = self.bids if is_buy else self.asks
            key = -price if is_buy else price
            level = own.get(key)
            if level is None:
                level = own[key] = [0, deque()]
            entry = [remaining, order_id]
            level[0] += 1
            level[1].append(entry)
            self.resting[order_id] = (entry, own, key, level)
        return fills

    def market(
        self, order_id: str, is_buy: bool, quantity: int, max_slippage_bps: int
    ) -> list[Fill]:
        """A market order bounded to `max_slippage_bps` from the best opposite price at
        arrival; what it cannot fill is dropped. Its fills."""
        fills: list[Fill] = []
        opposite = self.asks if is_buy else self.bids
        if not opposite:
            return fills
        best = opposite.peekitem(0)[0]  # a key; the best price is abs(key)
        if is_buy:
            limit_key = best * (_BPS + max_slippage_bps) // _BPS
        else:
            limit_key = (-best * (max_slippage_bps - _BPS)) // _BPS
        self._take(order_id, is_buy, limit_key, quantity, fills)
        return fills

    def cancel(self, order_id: str) -> bool:
        """Cancel a resting order (O(1) unless its level empties); False if not resting."""
        found = self.resting.pop(order_id, None)
        if found is None:
            return False
        entry, side, key, level = found
        entry[0] = 0
        level[0] -= 1
        if not level[0]:
            del side[key]
        return True

    def _take(
        self, taker_id: str, is_buy: bool, limit_key: int, remaining: int, fills: list[Fill]
    ) -> int:
        """Match against the opposite side up to `limit_key`, appending to `fills`; the
        lots left unfilled."""
        opposite = self.asks if is_buy else self.bids
        resting = self.resting
        while remaining and opposite:
            key, level = opposite.peekitem(0)
            if key > limit_key:
                break
            price = key if key > 0 else -key
            queue = level[1]
            while remaining and queue:
                maker = queue[0]
                lots = maker[0]
                if not lots:  # cancelled earlier: dropped lazily
                    queue.popleft()
                    continue
                quantity = remaining if remaining < lots else lots
                remaining -= quantity
                maker[0] = lots - quantity
                fills.append((maker[1], taker_id, price, quantity))
                if lots == quantity:
                    queue.popleft()
                    del resting[maker[1]]
                    level[0] -= 1
            if not level[0]:
                del opposite[key]
        return remaining

    def levels(self) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """Every level, best first: (price, total lots, order count) per level."""
        sides = []
        for side in (self.bids, self.asks):
            rows = []
            for key, (count, queue) in side.items():
                rows.append((abs(key), sum(entry[0] for entry in queue), count))
            sides.append(rows)
        return sides[0], sides[1]
