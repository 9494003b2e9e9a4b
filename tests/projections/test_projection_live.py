"""Live feeds: ordering, snapshot then contiguous updates, slow-subscriber isolation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from projections.live import LiveFeeds, SubscriberLagged
from projections.views import (
    BookSnapshot,
    BookUpdate,
    LevelChange,
    OrderUpdate,
    OrderView,
    PriceLevel,
    TradeView,
)

D = Decimal
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def trade(n: int, instrument: str = "BTC-USD") -> TradeView:
    return TradeView(f"{instrument}-{n}", instrument, D("100"), D("1"), "m", "t", "BUY", T0)


def level_update(sequence: int, price: str, quantity: str, count: int) -> BookUpdate:
    change = LevelChange("BUY", D(price), D(quantity), count)
    return BookUpdate("BTC-USD", sequence, (change,), f"0:{sequence}")


def order(user_id: str, instrument: str = "BTC-USD", status: str = "OPEN") -> OrderView:
    return OrderView(
        order_id="o1",
        client_order_id="",
        user_id=user_id,
        instrument=instrument,
        side="BUY",
        type="LIMIT",
        price=D("100"),
        quantity=D("1"),
        filled_quantity=D("0"),
        average_price=None,
        status=status,
        reason="",
        time_in_force="GTC",
        stop_price=None,
        post_only=False,
        expire_time=None,
        created_at=T0,
        updated_at=T0,
    )


def drain(subscription) -> list:  # type: ignore[no-untyped-def]
    items = []
    while subscription.pending:
        items.append(subscription._buffer.popleft())
    return items


async def test_trades_arrive_in_publication_order_per_instrument() -> None:
    feeds = LiveFeeds()
    btc = feeds.subscribe_trades("BTC-USD")
    eth = feeds.subscribe_trades("ETH-USD")
    for n in range(5):
        feeds.publish_trade(trade(n))
    feeds.publish_trade(trade(0, "ETH-USD"))
    received = [await anext(btc) for _ in range(5)]
    assert [t.trade_id for t in received] == [f"BTC-USD-{n}" for n in range(5)]
    assert (await anext(eth)).trade_id == "ETH-USD-0"
    assert btc.pending == 0


async def test_book_subscription_starts_with_snapshot_then_updates_without_gap() -> None:
    feeds = LiveFeeds()
    feeds.reset_book("BTC-USD", (PriceLevel(D("100"), D("2"), 1),), (), sequence=7, position="0:7")
    feeds.publish_book_update(level_update(8, "101", "1", 1))
    subscription = feeds.subscribe_book("BTC-USD")
    feeds.publish_book_update(level_update(9, "100", "0", 0))
    feeds.publish_book_update(level_update(10, "99", "3", 2))

    snapshot = await anext(subscription)
    assert isinstance(snapshot, BookSnapshot)
    assert snapshot.sequence == 8
    assert snapshot.bids == (PriceLevel(D("101"), D("1"), 1), PriceLevel(D("100"), D("2"), 1))
    updates = [await anext(subscription), await anext(subscription)]
    assert [u.sequence for u in updates] == [9, 10]
    assert all(isinstance(u, BookUpdate) for u in updates)

    # A late subscriber sees the book with the updates folded in.
    late = await anext(feeds.subscribe_book("BTC-USD", depth=1))
    assert late == BookSnapshot("BTC-USD", 10, (PriceLevel(D("101"), D("1"), 1),), (), "0:10")


async def test_slow_subscriber_is_dropped_and_others_get_everything() -> None:
    feeds = LiveFeeds(subscriber_buffer=3)
    slow = feeds.subscribe_trades("BTC-USD")
    fast = feeds.subscribe_trades("BTC-USD")
    received: list[str] = []

    async def consume() -> None:
        async for item in fast:
            received.append(item.trade_id)
            if len(received) == 10:
                return

    consumer = asyncio.create_task(consume())
    for n in range(10):
        feeds.publish_trade(trade(n))
        await asyncio.sleep(0)  # the fast consumer keeps up; the slow one never reads
    await consumer
    assert received == [f"BTC-USD-{n}" for n in range(10)]
    assert slow.lagged
    with pytest.raises(SubscriberLagged):
        await anext(slow)
    assert feeds.dropped_subscribers == 1
    assert feeds.subscriber_count() == 1


async def test_publishing_never_waits_for_subscribers() -> None:
    feeds = LiveFeeds(subscriber_buffer=2)
    subscriptions = [feeds.subscribe_book("BTC-USD") for _ in range(50)]
    for sequence in range(1, 101):
        feeds.publish_book_update(level_update(sequence, "100", str(sequence), 1))
    assert feeds.book_sequence("BTC-USD") == 100
    assert all(s.lagged for s in subscriptions)
    assert feeds.subscriber_count() == 0


async def test_order_updates_go_to_their_user_and_instrument_filter() -> None:
    feeds = LiveFeeds()
    alice = feeds.subscribe_order_updates("alice")
    alice_eth = feeds.subscribe_order_updates("alice", "ETH-USD")
    bob = feeds.subscribe_order_updates("bob")
    feeds.publish_order_update(OrderUpdate(order("alice"), "OrderAccepted", None, "1:1"))
    feeds.publish_order_update(OrderUpdate(order("alice", "ETH-USD"), "OrderAccepted", None, "1:2"))
    assert [u.position for u in drain(alice)] == ["1:1", "1:2"]
    assert [u.position for u in drain(alice_eth)] == ["1:2"]
    assert drain(bob) == []


async def test_closed_subscription_stops_receiving_and_close_ends_streams() -> None:
    feeds = LiveFeeds()
    async with feeds.subscribe_trades("BTC-USD") as subscription:
        feeds.publish_trade(trade(1))
        assert (await anext(subscription)).trade_id == "BTC-USD-1"
    assert feeds.subscriber_count() == 0
    feeds.publish_trade(trade(2))
    assert subscription.pending == 0

    ending = feeds.subscribe_trades("BTC-USD")
    feeds.publish_trade(trade(3))
    feeds.close()
    assert [t.trade_id async for t in ending] == ["BTC-USD-3"]


async def test_sequence_restart_drops_book_subscribers() -> None:
    feeds = LiveFeeds()
    subscription = feeds.subscribe_book("BTC-USD")
    feeds.publish_book_update(level_update(1, "100", "1", 1))
    feeds.reset_book("BTC-USD", (), (), sequence=0, position="")  # e.g. a rebuild
    # Dropped at once: what it had buffered no longer chains with the new book.
    with pytest.raises(SubscriberLagged):
        await anext(subscription)
