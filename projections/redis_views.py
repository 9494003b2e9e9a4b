"""The Redis views builder: aggregated book per instrument, last price, recent trades.

The builder keeps the books in memory (projections.book_reducer, pure) and, per batch,
writes the levels that changed, the tracked orders, the trades and its checkpoint in ONE
MULTI/EXEC: Redis has no transaction shared with PostgreSQL, so this checkpoint lives in
Redis, atomically with the view it describes. At start (and after any failure) the memory
is reloaded from Redis, so memory never runs ahead of what Redis holds. After each EXEC
the trades and book updates go to the live feeds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from projections import log_events as ev
from projections.book_reducer import DEFAULT_RECENT_TRADES, BooksReducer, Level, TrackedOrder
from projections.builder import ProjectionBuilder
from projections.live import LiveFeeds
from projections.redis_keys import (
    DEFAULT_PREFIX,
    RedisKeys,
    level_member,
    parse_level_member,
    text_of,
    trade_from_json,
    trade_to_json,
)
from projections.views import BUY, SELL, BookUpdate, TradeView
from server import streams
from server.eventstore.port import LogPosition, RecordedEvent
from server.observability import metrics

BUILDER_NAME = "redis-views"
_BOOK_METRICS_EVERY_S = 1.0


def group_of(event: RecordedEvent) -> Any:
    """What nets into one book update: the log transaction (one atomic append of the engine
    runner), else the input the result answers (its causation id)."""
    tx = getattr(event.position, "tx", None)
    if tx is not None:
        return tx
    metadata = getattr(event, "metadata", None) or {}
    return metadata.get(streams.CAUSATION_ID)


class RedisViewBuilder(ProjectionBuilder):
    """Keeps the Redis book views; `redis` is a `redis.asyncio.Redis` client."""

    def __init__(
        self,
        redis: aioredis.Redis,
        live: LiveFeeds | None = None,
        key_prefix: str = DEFAULT_PREFIX,
        recent_trades: int = DEFAULT_RECENT_TRADES,
        name: str = BUILDER_NAME,
        log_identity: str | None = None,
    ) -> None:
        self.name = name
        # Set by the runner from PostgreSQL before the first load; None skips the check.
        self.log_identity = log_identity
        self._redis = redis
        self._live = live
        self._keys = RedisKeys(key_prefix)
        self._recent_trades = recent_trades
        self.reducer = BooksReducer(recent_trades)
        self._unpublished_trades: list[TradeView] = []
        self._unpublished_updates: list[BookUpdate] = []
        self._book_metrics_at: dict[str, float] = {}

    @property
    def keys(self) -> RedisKeys:
        return self._keys

    async def load_checkpoint(self) -> LogPosition | None:
        """Reload the books from Redis (the memory must equal what Redis holds)."""
        keys = self._keys
        await self._forget_views_of_another_log()
        reducer = BooksReducer(self._recent_trades)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.checkpoint(self.name))
            pipe.smembers(keys.instruments)
            pipe.hgetall(keys.orders)
            token, raw_instruments, raw_orders = await pipe.execute()
        for raw_id, raw_order in raw_orders.items():
            order_id = text_of(raw_id)
            assert order_id is not None
            reducer.orders[order_id] = TrackedOrder.from_json(order_id, orjson.loads(raw_order))
        instruments = sorted(text_of(raw) or "" for raw in raw_instruments)
        for instrument in instruments:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrange(keys.side(instrument, BUY), 0, -1)
                pipe.zrange(keys.side(instrument, SELL), 0, -1)
                pipe.hgetall(keys.meta(instrument))
                pipe.lrange(keys.trades(instrument), 0, self._recent_trades - 1)
                bid_members, ask_members, meta, raw_trades = await pipe.execute()
            book = reducer.book(instrument)
            for members, side in ((bid_members, book.bids), (ask_members, book.asks)):
                for member in members:
                    price, quantity, count = parse_level_member(member)
                    side[price] = Level(quantity, count)
            meta_text = {text_of(k): text_of(v) for k, v in meta.items()}
            book.sequence = int(meta_text.get("sequence") or 0)
            book.position = meta_text.get("position") or ""
            last_price = meta_text.get("last_price")
            book.last_price = None if not last_price else ev.decimal_of(last_price)
            book.recent_trades.extend(trade_from_json(raw) for raw in raw_trades)
        self.reducer = reducer
        self._unpublished_trades, self._unpublished_updates = [], []
        if self._live is not None:
            for instrument, book in reducer.books.items():
                self._live.reset_book(
                    instrument, book.levels(BUY), book.levels(SELL), book.sequence, book.position
                )
        text = text_of(token)
        return None if text is None else LogPosition.parse(text)

    async def _forget_views_of_another_log(self) -> None:
        """Drop views (and checkpoint) built from a different log, then claim the prefix."""
        if self.log_identity is None:
            return
        recorded = text_of(await self._redis.get(self._keys.log_identity))
        if recorded == self.log_identity:
            return
        if recorded is not None or await self._redis.exists(self._keys.checkpoint(self.name)):
            # Views of another log (or of unknown origin): start again from the log.
            await drop_redis_views(self._redis, self._keys.prefix)
        await self._redis.set(self._keys.log_identity, self.log_identity)

    async def apply_batch(self, events: Sequence[RecordedEvent]) -> None:
        reducer = self.reducer
        for event in events:
            reducer.apply(event, group_of(event))
        changes = reducer.take_changes()
        keys = self._keys
        async with self._redis.pipeline(transaction=True) as pipe:
            # Last state per level over the whole batch: older states are superseded.
            final_levels: dict[tuple[str, str, Any], Any] = {}
            for update in changes.updates:
                for change in update.changes:
                    final_levels[(update.instrument, change.side, change.price)] = change
            for (instrument, side, price), change in final_levels.items():
                key = keys.side(instrument, side)
                score = float(price)
                pipe.zremrangebyscore(key, score, score)
                if change.order_count > 0 or change.quantity > 0:
                    member = level_member(price, change.quantity, change.order_count)
                    pipe.zadd(key, {member: score})
            live_orders: dict[FieldT, EncodableT] = {}
            gone_orders: list[str] = []
            for order_id in changes.changed_orders:
                order = reducer.orders.get(order_id)
                if order is None:
                    gone_orders.append(order_id)
                else:
                    live_orders[order_id] = orjson.dumps(order.to_json())
            if gone_orders:
                pipe.hdel(keys.orders, *gone_orders)
            if live_orders:
                pipe.hset(keys.orders, mapping=live_orders)
            trades_by_instrument: dict[str, list[TradeView]] = {}
            for trade in changes.trades:
                trades_by_instrument.setdefault(trade.instrument, []).append(trade)
            for instrument, trades in trades_by_instrument.items():
                pipe.lpush(keys.trades(instrument), *(trade_to_json(t) for t in trades))
                pipe.ltrim(keys.trades(instrument), 0, self._recent_trades - 1)
            if changes.touched_instruments:
                pipe.sadd(keys.instruments, *changes.touched_instruments)
            for instrument in changes.touched_instruments:
                book = reducer.book(instrument)
                meta: dict[FieldT, EncodableT] = {
                    "sequence": str(book.sequence),
                    "position": book.position,
                }
                if book.last_price is not None:
                    meta["last_price"] = str(book.last_price)
                pipe.hset(keys.meta(instrument), mapping=meta)
            pipe.set(keys.checkpoint(self.name), ev.position_token(events[-1].position))
            await pipe.execute()
        self._unpublished_trades = changes.trades
        self._unpublished_updates = changes.updates
        self._observe_books(changes.touched_instruments)

    async def after_commit(self) -> None:
        trades, self._unpublished_trades = self._unpublished_trades, []
        updates, self._unpublished_updates = self._unpublished_updates, []
        if self._live is None:
            return
        # A trade is published before the book update of the same input: by the time a
        # client sees the level shrink it has seen the trade that shrank it.
        for trade in trades:
            self._live.publish_trade(trade)
        for update in updates:
            self._live.publish_book_update(update)

    def _observe_books(self, instruments: set[str]) -> None:
        now = time.monotonic()
        for instrument in instruments:
            if now - self._book_metrics_at.get(instrument, 0.0) < _BOOK_METRICS_EVERY_S:
                continue
            self._book_metrics_at[instrument] = now
            book = self.reducer.book(instrument)
            metrics.observe_book(
                instrument,
                [(level.price, level.quantity) for level in book.levels(BUY)],
                [(level.price, level.quantity) for level in book.levels(SELL)],
            )


async def drop_redis_views(redis: aioredis.Redis, key_prefix: str = DEFAULT_PREFIX) -> int:
    """Delete every key of the book views and their checkpoints; returns how many."""
    deleted = 0
    batch: list[Any] = []
    async for key in redis.scan_iter(match=RedisKeys(key_prefix).pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += await redis.unlink(*batch)
            batch = []
    if batch:
        deleted += await redis.unlink(*batch)
    return deleted
