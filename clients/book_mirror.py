"""A local copy of one instrument's aggregated book, kept from StreamOrderBook messages.

Apply the snapshot, then every update in order. Each update must carry the next sequence
number; anything else means messages were lost, and `apply` raises `BookSequenceGap` so the
caller resubscribes for a fresh snapshot rather than trusting a wrong book.
"""

from __future__ import annotations

from decimal import Decimal

from clients.enums import Side
from clients.models import BookSnapshot, BookUpdate, PriceLevel


class BookSequenceGap(Exception):
    """An update did not follow the last applied sequence: the mirror is no longer valid."""

    def __init__(self, expected: int, received: int) -> None:
        super().__init__(f"book update {received} received, {expected} expected; resubscribe")
        self.expected = expected
        self.received = received


class BookNotInitialised(Exception):
    """An update arrived before any snapshot."""


class OrderBookMirror:
    """Aggregated levels by side and price, with the sequence of the last applied message."""

    def __init__(self, instrument: str) -> None:
        self.instrument = instrument
        self.sequence: int | None = None
        self._levels: dict[Side, dict[Decimal, PriceLevel]] = {Side.BUY: {}, Side.SELL: {}}

    def apply(self, message: BookSnapshot | BookUpdate) -> None:
        if isinstance(message, BookSnapshot):
            self._levels = {
                Side.BUY: {level.price: level for level in message.bids},
                Side.SELL: {level.price: level for level in message.asks},
            }
            self.sequence = message.sequence
            return
        if self.sequence is None:
            raise BookNotInitialised(f"update {message.sequence} before the snapshot")
        if message.sequence != self.sequence + 1:
            raise BookSequenceGap(self.sequence + 1, message.sequence)
        for change in message.changes:
            side_levels = self._levels[change.side]
            if change.quantity == 0:
                side_levels.pop(change.price, None)
            else:
                side_levels[change.price] = PriceLevel(
                    change.price, change.quantity, change.order_count
                )
        self.sequence = message.sequence

    def bids(self, depth: int = 0) -> tuple[PriceLevel, ...]:
        """Best (highest) first; depth 0 means all."""
        ordered = sorted(self._levels[Side.BUY].values(), key=lambda level: -level.price)
        return tuple(ordered[:depth] if depth else ordered)

    def asks(self, depth: int = 0) -> tuple[PriceLevel, ...]:
        """Best (lowest) first; depth 0 means all."""
        ordered = sorted(self._levels[Side.SELL].values(), key=lambda level: level.price)
        return tuple(ordered[:depth] if depth else ordered)
