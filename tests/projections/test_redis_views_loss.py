"""Redis loses the book views (as a restart of a Redis that keeps nothing on disk does): the
builder notices (at its next write, between batches, or at its first load), rebuilds them
from the log to exactly the views it had, and until then readers are refused, never
served an empty or partial book. Also: the book gauges always end at the book.

A loss is made by deleting every key of the test's prefix (the shared Redis cannot be
restarted here; tests/faults restarts a Redis of its own).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from projection_log import ScriptedLog, fold_book, random_commands
from prometheus_client import REGISTRY
from test_projection_views import caught_up, dump_views

from domain.instruments import Instrument
from projections.book_views import BookViews, BookViewsNotReady
from projections.live import LiveFeeds
from projections.redis_keys import RedisKeys
from projections.redis_views import VIEWS_CHECK_EVERY_S, RedisViewBuilder, drop_redis_views
from projections.runner import ProjectionRunner
from projections.views import BookSnapshot
from server.eventstore import EventStore
from server.eventstore.port import LogPosition, NewEvent
from server.log_contract import layout as streams

WAIT_S = 30.0


class FakeClock:
    """Monotonic seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def runner_on(
    event_store: EventStore,
    pg_pool: asyncpg.Pool,
    redis: aioredis.Redis,
    prefix: str,
    clock: FakeClock | None = None,
) -> ProjectionRunner:
    runner = ProjectionRunner(event_store, pg_pool, redis, key_prefix=prefix)
    if clock is not None:
        runner.redis_builder = RedisViewBuilder(
            redis, runner.live, key_prefix=prefix, event_store=event_store, clock=clock
        )
    return runner


async def lose_redis_views(redis: aioredis.Redis, prefix: str) -> None:
    assert await drop_redis_views(redis, prefix) > 0


def rebuilds(reason: str) -> float:
    sample = REGISTRY.get_sample_value("exchange_redis_views_rebuilds_total", {"reason": reason})
    return sample or 0.0


async def tick(event_store: EventStore, log: ScriptedLog) -> LogPosition:
    """A clock tick with nothing for the engine: a batch that writes no view."""
    result = await event_store.append(
        streams.CLOCK_STREAM,
        [NewEvent(streams.CLOCK_TICKED, {"now": streams.format_time(log.now)})],
    )
    assert result.last_position is not None
    return result.last_position


async def test_views_lost_while_idle_are_refused_then_rebuilt_between_batches(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    clock = FakeClock()
    log = ScriptedLog(event_store)
    runner = runner_on(event_store, pg_pool, redis_client, key_prefix, clock)
    await runner.start()
    try:
        await log.run(random_commands(21, 150))
        await caught_up(runner, log)
        views_before = await dump_views(pg_pool, redis_client, key_prefix)
        subscriber = runner.live.subscribe_book("BTC-USD")
        lost_before = rebuilds("lost")

        await lose_redis_views(redis_client, key_prefix)

        # Readers see the loss at once, whatever the builder is doing.
        with pytest.raises(BookViewsNotReady):
            await runner.book_views.get_book("BTC-USD")
        # The builder, idle, checks once VIEWS_CHECK_EVERY_S has passed, on the next batch
        # (a clock tick writes no view); the tick after it is handled once that is done.
        clock.advance(VIEWS_CHECK_EVERY_S)
        assert await runner.progress.wait_for(await tick(event_store, log), WAIT_S)
        assert await runner.progress.wait_for(await tick(event_store, log), WAIT_S)

        assert rebuilds("lost") == lost_before + 1
        assert await dump_views(pg_pool, redis_client, key_prefix) == views_before
        book = await runner.book_views.get_book("BTC-USD")
        assert (book.bids, book.asks) == log.engine_levels("BTC-USD")
        # The live subscriber was not dropped: same sequences before and after.
        assert not subscriber.lagged
        snapshot = await anext(subscriber)
        assert isinstance(snapshot, BookSnapshot) and snapshot.sequence == book.sequence
        assert not subscriber.pending
    finally:
        await runner.stop()


async def test_views_lost_are_rebuilt_before_the_next_batch_and_subscribers_go_on(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    log = ScriptedLog(event_store, inputs_per_append=5)
    runner = runner_on(event_store, pg_pool, redis_client, key_prefix)
    commands = random_commands(22, 300)
    await runner.start()
    try:
        await log.run(commands[:150])
        await caught_up(runner, log)
        subscriber = runner.live.subscribe_book("BTC-USD")
        snapshot = await anext(subscriber)
        assert isinstance(snapshot, BookSnapshot)
        lost_before = rebuilds("lost")

        await lose_redis_views(redis_client, key_prefix)
        await log.run(commands[150:])
        await caught_up(runner, log)

        assert rebuilds("lost") == lost_before + 1
        book = await runner.book_views.get_book("BTC-USD")
        assert (book.bids, book.asks) == log.engine_levels("BTC-USD")
        # Book sequences are the log's: the rebuilt views carry on where the lost ones
        # were, so the subscriber's updates chain onto its snapshot with no gap.
        updates = []
        while subscriber.pending:
            updates.append(await anext(subscriber))
        assert not subscriber.lagged
        assert updates and updates[-1].sequence == book.sequence
        assert fold_book(updates, snapshot)[0] == log.engine_levels("BTC-USD")
    finally:
        await runner.stop()
    survived = await dump_views(pg_pool, redis_client, key_prefix)
    # A rebuild from nothing gives the same views, key for key.
    await drop_redis_views(redis_client, key_prefix)
    rebuilt_runner = runner_on(event_store, pg_pool, redis_client, key_prefix)
    await rebuilt_runner.start()
    try:
        await caught_up(rebuilt_runner, log)
    finally:
        await rebuilt_runner.stop()
    assert await dump_views(pg_pool, redis_client, key_prefix) == survived


async def test_a_builder_started_on_lost_views_rebuilds_them_to_the_log_head(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    log = ScriptedLog(event_store)
    first = runner_on(event_store, pg_pool, redis_client, key_prefix)
    await first.start()
    try:
        await log.run(random_commands(23, 200))
        await caught_up(first, log)
    finally:
        await first.stop()
    views_before = await dump_views(pg_pool, redis_client, key_prefix)
    await lose_redis_views(redis_client, key_prefix)
    readers = BookViews(redis_client, key_prefix)
    with pytest.raises(BookViewsNotReady):
        await readers.get_book("BTC-USD")
    empty_before = rebuilds("empty")

    second = runner_on(event_store, pg_pool, redis_client, key_prefix)
    await second.start()
    try:
        await caught_up(second, log)
        assert rebuilds("empty") == empty_before + 1
        book = await readers.get_book("BTC-USD")
        assert (book.bids, book.asks) == log.engine_levels("BTC-USD")
        # The live feed starts from the rebuilt books (no history replayed to it).
        snapshot = await anext(second.live.subscribe_book("BTC-USD"))
        assert isinstance(snapshot, BookSnapshot)
        assert (snapshot.bids, snapshot.asks, snapshot.sequence) == (
            book.bids,
            book.asks,
            book.sequence,
        )
    finally:
        await second.stop()
    assert await dump_views(pg_pool, redis_client, key_prefix) == views_before


async def test_views_older_than_the_builder_are_brought_forward(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """Redis restarted from an old snapshot of itself: the epoch is there, but the views
    and checkpoint are older than what the builder wrote."""
    clock = FakeClock()
    log = ScriptedLog(event_store)
    runner = runner_on(event_store, pg_pool, redis_client, key_prefix, clock)
    commands = random_commands(24, 200)
    await runner.start()
    try:
        await log.run(commands[:100])
        await caught_up(runner, log)
        keys = [key async for key in redis_client.scan_iter(match=f"{key_prefix}*")]
        snapshot = {key: await redis_client.dump(key) for key in keys}
        await log.run(commands[100:])
        await caught_up(runner, log)
        views_before = await dump_views(pg_pool, redis_client, key_prefix)
        behind_before = rebuilds("behind")

        await lose_redis_views(redis_client, key_prefix)
        for key, value in snapshot.items():
            await redis_client.restore(key, 0, value)
        clock.advance(VIEWS_CHECK_EVERY_S)
        assert await runner.progress.wait_for(await tick(event_store, log), WAIT_S)
        assert await runner.progress.wait_for(await tick(event_store, log), WAIT_S)

        assert rebuilds("behind") == behind_before + 1
        assert await dump_views(pg_pool, redis_client, key_prefix) == views_before
    finally:
        await runner.stop()


async def test_readers_refuse_views_without_epoch_or_being_rebuilt(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    keys = RedisKeys(key_prefix)
    readers = BookViews(redis_client, key_prefix)
    await redis_client.set(keys.epoch, "e1")
    assert (await readers.get_book("BTC-USD")).bids == ()
    await redis_client.set(keys.rebuilding, "12:3")
    for read in (
        readers.get_book("BTC-USD"),
        readers.last_price("BTC-USD"),
        readers.recent_trades("BTC-USD", 5),
    ):
        with pytest.raises(BookViewsNotReady, match="being rebuilt"):
            await read
    await redis_client.delete(keys.rebuilding, keys.epoch)
    with pytest.raises(BookViewsNotReady):
        await readers.get_book("BTC-USD")

    feeds = LiveFeeds()
    feeds.set_books_ready(False)
    with pytest.raises(BookViewsNotReady):
        feeds.subscribe_book("BTC-USD")
    feeds.set_books_ready(True)
    assert isinstance(await anext(feeds.subscribe_book("BTC-USD")), BookSnapshot)


GAUGE_INSTRUMENT = "GAUGE-USD"  # gauges of its own: no other test's builder sets them


def gauge(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, {"instrument": GAUGE_INSTRUMENT, **labels})
    assert value is not None, name
    return value


async def test_book_gauges_are_throttled_and_then_end_at_the_book(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    clock = FakeClock()
    log = ScriptedLog(
        event_store, {GAUGE_INSTRUMENT: Instrument(GAUGE_INSTRUMENT, Decimal("0.01"), Decimal(1))}
    )
    runner = runner_on(event_store, pg_pool, redis_client, key_prefix, clock)

    def order(order_id: str, side: str, price: str) -> dict[str, Any]:
        return {
            "op": "place",
            "order_id": order_id,
            "user_id": "u1",
            "instrument": GAUGE_INSTRUMENT,
            "side": side,
            "type": "LIMIT",
            "price": price,
            "quantity": "2",
            "time_in_force": "GTC",
        }

    await runner.start()
    try:
        await log.run([order("a1", "SELL", "101.00"), order("b1", "BUY", "99.00")])
        await caught_up(runner, log)
        # The first change of a book sets its gauges at once...
        assert gauge("exchange_book_best_ask") == 101.0
        assert gauge("exchange_book_depth", side="ask") == 2.0
        # ...within the interval, changes are held back (the cancel is not shown yet)...
        clock.advance(0.5)
        await log.run([{"op": "cancel", "order_id": "a1"}])
        await caught_up(runner, log)
        assert gauge("exchange_book_best_ask") == 101.0
        # ...and the trailing update, once the interval has passed, shows the book as it is.
        clock.advance(0.5)
        runner.redis_builder.flush_book_metrics()  # type: ignore[attr-defined]
        assert math.isnan(gauge("exchange_book_best_ask"))
        assert math.isnan(gauge("exchange_book_spread"))
        assert gauge("exchange_book_depth", side="ask") == 0.0
        assert gauge("exchange_book_best_bid") == 99.0
        assert gauge("exchange_book_levels", side="bid") == 1.0
        # Nothing changed since: a later flush leaves them as they are.
        clock.advance(5.0)
        runner.redis_builder.flush_book_metrics()  # type: ignore[attr-defined]
        assert gauge("exchange_book_best_bid") == 99.0
    finally:
        await runner.stop()
