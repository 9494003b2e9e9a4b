"""OrderBookMirror: a local book kept from a snapshot and sequenced level updates."""

from __future__ import annotations

from decimal import Decimal

import pytest

from clients.book_mirror import BookNotInitialised, BookSequenceGap, OrderBookMirror
from clients.enums import Side
from clients.models import BookSnapshot, BookUpdate, LevelChange, PriceLevel


def level(price: str, quantity: str, count: int = 1) -> PriceLevel:
    return PriceLevel(Decimal(price), Decimal(quantity), count)


def change(side: Side, price: str, quantity: str, count: int) -> LevelChange:
    return LevelChange(side, Decimal(price), Decimal(quantity), count)


SNAPSHOT = BookSnapshot(
    instrument="BTC-USD",
    sequence=10,
    bids=(level("99.00", "1"), level("98.00", "2", 2)),
    asks=(level("101.00", "3"),),
    position="p",
)


def test_snapshot_then_updates_add_change_and_remove_levels() -> None:
    mirror = OrderBookMirror("BTC-USD")
    mirror.apply(SNAPSHOT)
    mirror.apply(
        BookUpdate(
            "BTC-USD",
            11,
            (
                change(Side.BUY, "99.50", "0.5", 1),  # new best bid
                change(Side.BUY, "98.00", "0", 0),  # level gone
                change(Side.SELL, "101.00", "1.25", 2),  # changed
            ),
            "p",
        )
    )
    mirror.apply(BookUpdate("BTC-USD", 12, (change(Side.SELL, "100.50", "4", 1),), "p"))
    assert mirror.sequence == 12
    assert mirror.bids() == (level("99.50", "0.5"), level("99.00", "1"))
    assert mirror.asks() == (level("100.50", "4"), level("101.00", "1.25", 2))
    assert mirror.bids(depth=1) == (level("99.50", "0.5"),)


def test_a_gap_in_sequence_is_refused_and_changes_nothing() -> None:
    mirror = OrderBookMirror("BTC-USD")
    mirror.apply(SNAPSHOT)
    with pytest.raises(BookSequenceGap) as raised:
        mirror.apply(BookUpdate("BTC-USD", 12, (change(Side.BUY, "99.00", "0", 0),), "p"))
    assert (raised.value.expected, raised.value.received) == (11, 12)
    assert mirror.sequence == 10
    assert mirror.bids() == SNAPSHOT.bids


def test_a_replayed_update_is_a_gap_too() -> None:
    mirror = OrderBookMirror("BTC-USD")
    mirror.apply(SNAPSHOT)
    with pytest.raises(BookSequenceGap):
        mirror.apply(BookUpdate("BTC-USD", 10, (), "p"))


def test_update_before_snapshot_is_refused() -> None:
    with pytest.raises(BookNotInitialised):
        OrderBookMirror("BTC-USD").apply(BookUpdate("BTC-USD", 1, (), "p"))


def test_a_new_snapshot_replaces_everything() -> None:
    mirror = OrderBookMirror("BTC-USD")
    mirror.apply(SNAPSHOT)
    mirror.apply(BookSnapshot("BTC-USD", 3, (), (level("5.00", "1"),), "p"))
    assert (mirror.sequence, mirror.bids(), mirror.asks()) == (3, (), (level("5.00", "1"),))
