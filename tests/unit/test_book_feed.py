"""server.book_feed: the book stream with the instrument's status, as both transports serve
it, over the live feeds' own subscriptions (projections.live.Subscription)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from projections.live import SubscriberLagged, Subscription
from projections.views import (
    BookSnapshot,
    BookUpdate,
    InstrumentStatusView,
    LevelChange,
    PriceLevel,
)
from server.book_feed import BookFeed, StatusChange

NOW = datetime(2026, 12, 4, tzinfo=UTC)
BID = PriceLevel(Decimal(10), Decimal(1), 1)
SNAPSHOT = BookSnapshot("BTC-USD", 7, (BID,), (), "1:1", "HALTED")
UPDATE = BookUpdate("BTC-USD", 8, (LevelChange("BUY", Decimal(10), Decimal(0), 0),), "2:1")


def status(name: str, position: str) -> InstrumentStatusView:
    return InstrumentStatusView("BTC-USD", name, NOW, position)


def feed() -> tuple[BookFeed, Subscription[object], Subscription[object]]:
    book: Subscription[object] = Subscription(10, lambda _: None)
    statuses: Subscription[object] = Subscription(10, lambda _: None)
    return BookFeed(book, statuses), book, statuses


async def test_the_snapshot_first_then_updates_and_only_real_status_changes() -> None:
    books, book, statuses = feed()
    statuses.offer(status("HALTED", "1:1"))  # the status the snapshot already carries
    statuses.offer(status("TRADING", "3:1"))
    book.offer(SNAPSHOT)
    assert await anext(books) == SNAPSHOT
    # The repeat of the snapshot's status is not sent; the change is, at the book's sequence.
    assert await anext(books) == StatusChange("BTC-USD", 7, "TRADING", "3:1")
    book.offer(UPDATE)
    assert await anext(books) == UPDATE
    statuses.offer(status("TRADING", "4:1"))  # no change
    statuses.offer(status("CANCEL_ONLY", "5:1"))
    assert await anext(books) == StatusChange("BTC-USD", 8, "CANCEL_ONLY", "5:1")
    books.close()
    assert book.closed and statuses.closed


async def test_a_lagged_subscription_ends_the_feed_with_its_error() -> None:
    books, book, statuses = feed()
    book.offer(SNAPSHOT)
    assert await anext(books) == SNAPSHOT
    statuses.close_after_lag()
    with pytest.raises(SubscriberLagged):
        await anext(books)
    books.close()
