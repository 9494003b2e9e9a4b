"""The builders on the real event store, PostgreSQL and Redis: exact views, restart from
checkpoints, crash inside a batch, rebuild to identical views, live feeds, read-your-writes."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from projection_log import ScriptedLog, fold_book, random_commands

from projections import postgres_views
from projections.postgres_views import PostgresViewBuilder
from projections.readers import InvalidPageToken
from projections.rebuild import rebuild
from projections.redis_views import RedisViewBuilder
from projections.runner import ProjectionRunner
from projections.views import BookSnapshot, PriceLevel
from server.eventstore import EventStore

D = Decimal
WAIT_S = 30.0


def place(order_id: str, user: str, side: str, price: str | None, quantity: str, **extra: Any):  # type: ignore[no-untyped-def]
    command: dict[str, Any] = {
        "op": "place",
        "order_id": order_id,
        "user_id": user,
        "instrument": "BTC-USD",
        "side": side,
        "type": "LIMIT" if price is not None else "MARKET",
        "quantity": quantity,
        "time_in_force": "GTC",
    }
    if price is not None:
        command["price"] = price
    command.update(extra)
    return command


SCRIPT = [
    place("s1", "u1", "SELL", "100.00", "1.0"),
    place("s2", "u2", "SELL", "101.00", "2.0"),
    place("b1", "u3", "BUY", "101.00", "2.0"),  # takes s1 1.0@100 and s2 1.0@101
    place("b2", "u3", "BUY", "99.00", "3.0"),
    {"op": "amend", "order_id": "b2", "quantity": "2.5"},
    place("b3", "u4", "BUY", "101.00", "2.0", time_in_force="IOC"),  # 1.0@101, rest cancelled
    {"op": "cancel", "order_id": "b2"},
    place("s3", "u1", "SELL", "102.00", "1.0", post_only=True),
    place("b4", "u3", "BUY", "99.00", "1.0"),
    place("s4", "u2", "SELL", "98.00", "1.0", post_only=True),  # would take: rejected
    place(
        "b5", "u3", "BUY", "97.00", "1.0", time_in_force="GTD", expire_time="2026-01-01T00:00:10Z"
    ),
    {"op": "time", "now": "2026-01-01T00:00:11Z"},
]


def new_runner(store: EventStore, pool: asyncpg.Pool, redis: aioredis.Redis, prefix: str):  # type: ignore[no-untyped-def]
    return ProjectionRunner(store, pool, redis, key_prefix=prefix)


async def caught_up(runner: ProjectionRunner, log: ScriptedLog) -> None:
    """Wait for the builders to apply the log's last write (read-your-writes)."""
    assert log.last_position is not None
    assert await runner.progress.wait_for(log.last_position, WAIT_S)


async def dump_views(pool: asyncpg.Pool, redis: aioredis.Redis, prefix: str) -> dict[str, Any]:
    """Every row and key of both views, for exact comparisons."""
    orders = await pool.fetch("SELECT * FROM view_orders ORDER BY order_seq")
    fills = await pool.fetch("SELECT * FROM view_order_fills ORDER BY fill_seq")
    trades = await pool.fetch("SELECT * FROM view_trades ORDER BY trade_seq")
    keys: dict[str, Any] = {}
    async for key in redis.scan_iter(match=f"{prefix}*"):
        name = key.decode()
        kind = (await redis.type(key)).decode()
        if kind == "zset":
            keys[name] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "hash":
            keys[name] = await redis.hgetall(key)
        elif kind == "list":
            keys[name] = await redis.lrange(key, 0, -1)
        elif kind == "set":
            keys[name] = sorted(await redis.smembers(key))
        else:
            keys[name] = await redis.get(key)
    checkpoint_keys = [name for name in keys if ":checkpoint:" in name]
    for name in checkpoint_keys:  # positions are compared through the views themselves
        keys.pop(name)
    keys.pop(f"{prefix}views-epoch", None)  # a random token naming the build, not content
    return {
        "orders": [dict(row) for row in orders],
        "fills": [dict(row) for row in fills],
        "trades": [dict(row) for row in trades],
        "redis": keys,
    }


async def test_scripted_run_gives_exact_views(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    log = ScriptedLog(event_store)
    runner = new_runner(event_store, pg_pool, redis_client, key_prefix)
    await runner.start()
    try:
        await log.run(SCRIPT)
        await caught_up(runner, log)
        views = runner.order_views

        expected = {
            # order: (status, reason, quantity, filled, average)
            "s1": ("FILLED", "", "1.0000", "1.0000", "100.00"),
            "s2": ("FILLED", "", "2.0000", "2.0000", "101.00"),
            "b1": ("FILLED", "", "2.0000", "2.0000", "100.50"),
            "b2": ("CANCELLED", "USER_REQUESTED", "2.5000", "0", None),
            "b3": ("CANCELLED", "IOC_REMAINDER", "2.0000", "1.0000", "101.00"),
            "s3": ("OPEN", "", "1.0000", "0", None),
            "b4": ("OPEN", "", "1.0000", "0", None),
            "s4": ("REJECTED", "POST_ONLY_WOULD_TAKE", "1.0", "0", None),
            "b5": ("EXPIRED", "", "1.0000", "0", None),
        }
        for order_id, (status, reason, quantity, filled, average) in expected.items():
            order = await views.get_order(order_id)
            assert order is not None, order_id
            got = (
                order.status,
                order.reason,
                str(order.quantity),
                str(order.filled_quantity),
                None if order.average_price is None else str(order.average_price),
            )
            assert got == (status, reason, quantity, filled, average), order_id

        b1 = await views.get_order("b1")
        assert b1 is not None
        assert [(f.trade_id, f.price, f.quantity, f.liquidity) for f in b1.fills] == [
            ("BTC-USD-1", D("100.00"), D("1.0000"), "TAKER"),
            ("BTC-USD-2", D("101.00"), D("1.0000"), "TAKER"),
        ]
        assert (b1.user_id, b1.side, b1.type, b1.price, b1.time_in_force) == (
            "u3",
            "BUY",
            "LIMIT",
            D("101.00"),
            "GTC",
        )
        s3 = await views.get_order("s3")
        assert s3 is not None and s3.post_only
        b5 = await views.get_order("b5")
        assert b5 is not None and b5.expire_time is not None
        assert b5.expire_time.isoformat() == "2026-01-01T00:00:10+00:00"
        assert await views.get_order("nope") is None

        trades, token = await views.list_trades("BTC-USD")
        assert token == ""
        assert [
            (t.trade_id, t.price, t.quantity, t.maker_order_id, t.taker_order_id, t.taker_side)
            for t in trades
        ] == [
            ("BTC-USD-3", D("101.00"), D("1.0000"), "s2", "b3", "BUY"),
            ("BTC-USD-2", D("101.00"), D("1.0000"), "s2", "b1", "BUY"),
            ("BTC-USD-1", D("100.00"), D("1.0000"), "s1", "b1", "BUY"),
        ]
        first, token = await views.list_trades("BTC-USD", page_size=2)
        rest, last_token = await views.list_trades("BTC-USD", page_size=2, page_token=token)
        assert [t.trade_id for t in first + rest] == ["BTC-USD-3", "BTC-USD-2", "BTC-USD-1"]
        assert last_token == ""

        mine, token = await views.list_orders("u3", page_size=3)
        more, end = await views.list_orders("u3", page_size=3, page_token=token)
        assert [o.order_id for o in mine + more] == ["b5", "b4", "b2", "b1"]
        assert end == ""
        open_orders, _ = await views.list_orders("u3", status="OPEN")
        assert [o.order_id for o in open_orders] == ["b4"]
        assert (await views.list_orders("u3", instrument="ETH-USD"))[0] == []
        with pytest.raises(ValueError):
            await views.list_orders("u3", page_token="garbage")

        book = await runner.book_views.get_book("BTC-USD")
        assert book.bids == (PriceLevel(D("99.00"), D("1.0000"), 1),)
        assert book.asks == (PriceLevel(D("102.00"), D("1.0000"), 1),)
        assert book.last_price == D("101.00")
        # One update per input that changed the book (s4 was rejected: no change).
        assert book.sequence == 11
        assert (book.bids, book.asks) == log.engine_levels("BTC-USD")
        recent = await runner.book_views.recent_trades("BTC-USD", 2)
        assert [t.trade_id for t in recent] == ["BTC-USD-3", "BTC-USD-2"]
        assert await runner.book_views.last_price("ETH-USD") is None
    finally:
        await runner.stop()


async def test_redis_views_of_another_log_are_rebuilt_not_served(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """Redis kept from another database (here: a book and a checkpoint far ahead) must not
    be taken for this log's views."""
    stale = ProjectionRunner(event_store, pg_pool, redis_client, key_prefix=key_prefix)
    await redis_client.set(f"{key_prefix}log-id", "00000000-0000-0000-0000-000000000000")
    await redis_client.set(stale.redis_builder.keys.checkpoint("redis-views"), "999999:999999")
    await redis_client.zadd(stale.redis_builder.keys.side("BTC-USD", "BUY"), {"1.00|5|1": 1.0})
    await redis_client.sadd(stale.redis_builder.keys.instruments, "BTC-USD")

    log = ScriptedLog(event_store)
    runner = new_runner(event_store, pg_pool, redis_client, key_prefix)
    await runner.start()
    await log.run(SCRIPT)
    await caught_up(runner, log)
    await runner.stop()

    book = await runner.book_views.get_book("BTC-USD")
    assert (book.bids, book.asks) == log.engine_levels("BTC-USD")
    async with pg_pool.acquire() as connection:
        log_id = await connection.fetchval("SELECT log_id::text FROM projection_log_identity")
    assert (await redis_client.get(f"{key_prefix}log-id")).decode() == log_id


async def test_restart_from_checkpoints_applies_nothing_twice(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    commands = random_commands(7, 300)
    log = ScriptedLog(event_store, inputs_per_append=5)
    runner = new_runner(event_store, pg_pool, redis_client, key_prefix)
    await runner.start()
    await log.run(commands[:150])
    await caught_up(runner, log)
    await runner.stop()
    stopped_at = await dump_views(pg_pool, redis_client, key_prefix)

    await log.run(commands[150:])  # written while no builder runs
    runner = new_runner(event_store, pg_pool, redis_client, key_prefix)
    await runner.start()
    await caught_up(runner, log)
    await runner.stop()
    restarted = await dump_views(pg_pool, redis_client, key_prefix)
    # Rows written before the stop are untouched unless a later event changed them.
    assert restarted["trades"][: len(stopped_at["trades"])] == stopped_at["trades"]
    assert restarted["fills"][: len(stopped_at["fills"])] == stopped_at["fills"]

    book = await runner.book_views.get_book("BTC-USD")
    assert (book.bids, book.asks) == log.engine_levels("BTC-USD")
    trade_count = sum(
        1 for e in await event_store.read_all(None, limit=100_000) if e.type == "TradeExecuted"
    )
    assert len(restarted["trades"]) == trade_count
    filled = sum((row["filled_quantity"] for row in restarted["orders"]), D(0))
    assert filled == 2 * sum((row["quantity"] for row in restarted["trades"]), D(0))

    await rebuild(event_store, pg_pool, redis_client, key_prefix=key_prefix)
    assert await dump_views(pg_pool, redis_client, key_prefix) == restarted


class PostgresBuilderCrashingOnce(PostgresViewBuilder):
    """Writes a batch's rows and checkpoint, then fails before the commit (once)."""

    crashed = False

    async def _write(self, connection, orders, batch, money, sequences, checkpoint):  # type: ignore[no-untyped-def,override]
        written = await PostgresViewBuilder._write(
            connection, orders, batch, money, sequences, checkpoint
        )
        if batch.trades and not self.crashed:
            PostgresBuilderCrashingOnce.crashed = True
            raise ConnectionError("simulated crash inside the transaction")
        return written


class RedisBuilderCrashingOnce(RedisViewBuilder):
    """Changes its memory, then fails before EXEC (once): memory must be reloaded."""

    crashed = False

    async def apply_batch(self, events):  # type: ignore[no-untyped-def,override]
        if not self.crashed and any(e.type == "TradeExecuted" for e in events):
            RedisBuilderCrashingOnce.crashed = True
            for event in events:
                self.reducer.apply(event)
            raise ConnectionError("simulated crash before EXEC")
        await super().apply_batch(events)


async def test_a_crash_inside_a_batch_leaves_no_trace(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    log = ScriptedLog(event_store, inputs_per_append=5)
    runner = new_runner(event_store, pg_pool, redis_client, key_prefix)
    runner.postgres_builder = PostgresBuilderCrashingOnce(pg_pool, runner.live)
    runner.redis_builder = RedisBuilderCrashingOnce(
        redis_client, runner.live, key_prefix=key_prefix
    )
    await runner.start()
    try:
        await log.run(random_commands(11, 200))
        await caught_up(runner, log)
    finally:
        await runner.stop()
    assert PostgresBuilderCrashingOnce.crashed and RedisBuilderCrashingOnce.crashed
    survived = await dump_views(pg_pool, redis_client, key_prefix)
    await rebuild(event_store, pg_pool, redis_client, key_prefix=key_prefix)
    assert await dump_views(pg_pool, redis_client, key_prefix) == survived
    book = await runner.book_views.get_book("BTC-USD")
    assert (book.bids, book.asks) == log.engine_levels("BTC-USD")


@pytest.mark.parametrize("inputs_per_append", [1, 20])
async def test_random_run_matches_the_engine(
    event_store: EventStore,
    pg_pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    key_prefix: str,
    inputs_per_append: int,
) -> None:
    log = ScriptedLog(event_store, inputs_per_append=inputs_per_append)
    runner = new_runner(event_store, pg_pool, redis_client, key_prefix)
    await runner.start()
    try:
        await log.run(random_commands(3, 400))
        await caught_up(runner, log)
        book = await runner.book_views.get_book("BTC-USD")
        assert (book.bids, book.asks) == log.engine_levels("BTC-USD")
        top = await runner.book_views.get_book("BTC-USD", depth=2)
        assert (top.bids, top.asks) == (book.bids[:2], book.asks[:2])
        rows = await pg_pool.fetch("SELECT order_id, status FROM view_orders")
        for row in rows:
            status = log.engine.order_status(row["order_id"])
            assert status is not None
            expected = "OPEN" if status.value == "TRIGGERED" else status.value
            assert row["status"] == expected, row["order_id"]
    finally:
        await runner.stop()


async def test_live_feeds_follow_the_views(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    log = ScriptedLog(event_store)
    runner = new_runner(event_store, pg_pool, redis_client, key_prefix)
    await runner.start()
    try:
        commands = random_commands(5, 300)
        await log.run(commands[:100])
        await caught_up(runner, log)
        book_feed = runner.live.subscribe_book("BTC-USD")
        trade_feed = runner.live.subscribe_trades("BTC-USD")
        user_feed = runner.live.subscribe_order_updates("u1")
        await log.run(commands[100:])
        await caught_up(runner, log)

        snapshot = await anext(book_feed)
        assert isinstance(snapshot, BookSnapshot)
        updates = []
        while book_feed.pending:
            updates.append(await anext(book_feed))
        folded, sequence = fold_book(updates, snapshot)
        assert folded == log.engine_levels("BTC-USD")
        book = await runner.book_views.get_book("BTC-USD")
        assert sequence == book.sequence

        trades = []
        while trade_feed.pending:
            trades.append(await anext(trade_feed))
        listed, _ = await runner.order_views.list_trades("BTC-USD", page_size=1000)
        new_ids = [t.trade_id for t in listed if t.position > snapshot.position]
        assert [t.trade_id for t in trades] == list(reversed(new_ids))

        updates = []
        while user_feed.pending:
            updates.append(await anext(user_feed))
        assert updates and all(u.order.user_id == "u1" for u in updates)
        # The last update of each order is its state in the view.
        last_by_order = {u.order.order_id: u.order for u in updates}
        for order_id, order in last_by_order.items():
            stored = await runner.order_views.get_order(order_id, with_fills=False)
            assert stored == order
    finally:
        await runner.stop()


async def test_wait_for_makes_a_write_visible(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    log = ScriptedLog(event_store)
    runner = new_runner(event_store, pg_pool, redis_client, key_prefix)
    await runner.start()
    try:
        for n in range(20):
            position = await log.submit(place(f"w{n}", "u9", "BUY", "90.00", "1.0"))
            assert await runner.progress.wait_for(position, WAIT_S)
            order = await runner.order_views.get_order(f"w{n}")
            assert order is not None and order.status == "OPEN"
            book = await runner.book_views.get_book("BTC-USD")
            assert book.bids == (PriceLevel(D("90.00"), D("1.0000") * (n + 1), n + 1),)
        # A position nobody will reach in time: the wait gives up.
        head = await event_store.head_position()
        assert head is not None
        later = type(head)(head.tx + 1_000_000, 0)
        assert not await runner.progress.wait_for(later, 0.05)
    finally:
        await runner.stop()


async def test_rebuild_of_an_empty_log(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    report = await rebuild(event_store, pg_pool, redis_client, key_prefix=key_prefix)
    assert report.head is None and report.events == 0
    assert await pg_pool.fetchval("SELECT count(*) FROM view_orders") == 0


async def test_stop_while_live_ends_subscriber_streams(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    runner = new_runner(event_store, pg_pool, redis_client, key_prefix)
    await runner.start()
    feed = runner.live.subscribe_trades("BTC-USD")
    consumer = asyncio.create_task(anext(feed, None))
    await runner.stop()
    assert await consumer is None


async def test_client_order_ids_and_page_tokens(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    log = ScriptedLog(event_store)
    runner = new_runner(event_store, pg_pool, redis_client, key_prefix)
    await runner.start()
    try:
        await log.run(
            [
                place("c1", "u7", "SELL", "100.00", "1.0", client_order_id="mine-1"),
                place("c2", "u9", "BUY", "100.00", "1.0"),
                place("c3", "u7", "BUY", "90.00", "1.0", client_order_id="mine-2"),
                place("c4", "u8", "BUY", "90.00", "1.0", client_order_id="mine-1"),
            ]
        )
        await caught_up(runner, log)
        views = runner.order_views
        found = await views.find_by_client_order_id("u7", "mine-1")
        assert found is not None and (found.order_id, found.status) == ("c1", "FILLED")
        other = await views.find_by_client_order_id("u8", "mine-1")
        assert other is not None and other.order_id == "c4"
        assert await views.find_by_client_order_id("u7", "nope") is None

        orders, token = await views.list_orders("u7", page_size=1)
        assert [o.order_id for o in orders] == ["c3"] and token
        _, trade_token = await views.list_trades("BTC-USD", page_size=1)
        assert trade_token == ""  # one trade: no next page
        with pytest.raises(InvalidPageToken):
            await views.list_trades("BTC-USD", page_token=token)  # an orders token
        everything, end = await views.list_orders("u7", page_size=0)
        assert [o.order_id for o in everything] == ["c3", "c1"] and end == ""
    finally:
        await runner.stop()


class SubscriptionFailingOnce:
    """The event store, except that the first subscription breaks after 50 events."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def subscribe_all(self, after=None, filter=None):  # type: ignore[no-untyped-def]
        delivered = 0
        async for event in self._store.subscribe_all(after, filter):
            if self.failures == 0 and delivered == 50:
                self.failures += 1
                raise ConnectionError("simulated lost connection")
            delivered += 1
            yield event


async def test_a_broken_subscription_is_resumed_from_the_checkpoint(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    log = ScriptedLog(event_store, inputs_per_append=10)
    await log.run(random_commands(21, 200))
    flaky = SubscriptionFailingOnce(event_store)
    runner = new_runner(flaky, pg_pool, redis_client, key_prefix)  # type: ignore[arg-type]
    await runner.start()
    try:
        await caught_up(runner, log)
    finally:
        await runner.stop()
    assert flaky.failures == 1
    survived = await dump_views(pg_pool, redis_client, key_prefix)
    await rebuild(event_store, pg_pool, redis_client, key_prefix=key_prefix)
    assert await dump_views(pg_pool, redis_client, key_prefix) == survived


async def test_a_batch_cancelled_while_it_begins_leaves_no_open_transaction(
    event_store: EventStore, pg_pool: asyncpg.Pool, monkeypatch: Any, caplog: Any
) -> None:
    """Stopping the app cancels a batch wherever it is, its BEGIN included. Cancelled
    there, the connection used to go back to the pool inside the transaction (asyncpg
    then logs an error, on every such stop). Here the BEGIN is made slow so the cancel
    lands in it; the batch after it must work on the same pool."""
    log = ScriptedLog(event_store)
    await log.run([place("s1", "u1", "SELL", "100.00", "1.0")])
    events = await event_store.read_stream("order-s1")
    builder = PostgresViewBuilder(pg_pool)
    await builder.migrate()
    await builder.load_checkpoint()
    slow_begin = postgres_views.BEGIN_VIEW_BATCH + "; SELECT pg_sleep(5)"
    monkeypatch.setattr(postgres_views, "BEGIN_VIEW_BATCH", slow_begin)
    batch = asyncio.create_task(builder.apply_batch(events))
    await asyncio.sleep(0.5)
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    monkeypatch.undo()
    await builder.apply_batch(events)
    assert await pg_pool.fetchval("SELECT status FROM view_orders WHERE order_id = 's1'") == "OPEN"
    assert "active transaction" not in caplog.text
