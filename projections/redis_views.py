"""The Redis views builder: aggregated book per instrument, last price, recent trades, and
every account's balances (for fast reads and the live balance feed), instrument statuses.

The builder keeps the books in memory (projections.book_reducer, pure: it applies the
engine's level deltas) and, per batch, writes the levels that changed, the trades and its
checkpoint in ONE MULTI/EXEC: Redis has no transaction shared with PostgreSQL, so this
checkpoint lives in Redis, atomically with the view it describes. At start (and after any
failure) the memory is reloaded from Redis, so memory never runs ahead of what Redis
holds. After each EXEC the trades and book updates go to the live feeds.

Redis may lose the views (it keeps nothing on disk here, so a restart empties it). The
views carry an epoch key that no batch writes: each batch's MULTI reads it first, an idle
builder reads it at most once a second (`VIEWS_CHECK_EVERY_S`, on any batch, clock ticks
included), and the readers read it with every book. When it is gone, the builder rebuilds
the views from the log, from its beginning up to the position it had reached (or, for a
builder just started, the log's head), marked "rebuilding" so that readers answer "not
ready" meanwhile, never an empty or partial book. The log, not PostgreSQL's views, is
the source: the books and their sequence numbers are the engine's, in the log (the
PostgreSQL views are another builder's state at another position, without the books), so
the rebuilt views equal the lost ones key for key and live subscribers' sequences carry on
without a gap.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
import structlog
from redis.typing import EncodableT, FieldT

from projections.balance_reducer import (
    MONEY_EVENT_TYPES,
    BalanceKey,
    BalancesReducer,
    BalanceState,
)
from projections.book_reducer import DEFAULT_RECENT_TRADES, BookChanges, BooksReducer, Level
from projections.builder import ProjectionBuilder, transaction_of
from projections.live import LiveFeeds
from projections.log_events import record_of, status_view
from projections.redis_keys import (
    DEFAULT_PREFIX,
    RedisKeys,
    balance_value,
    level_member,
    parse_balance_value,
    parse_level_member,
    parse_status_value,
    status_value,
    text_of,
    trade_from_json,
    trade_to_json,
)
from projections.views import BUY, SELL, BalanceView, BookUpdate, InstrumentStatusView, TradeView
from server.eventstore.port import EventFilter, EventStore, LogPosition, RecordedEvent
from server.log_contract import records as rec
from server.observability import metrics

logger = structlog.get_logger(__name__)

BUILDER_NAME = "redis-views"
_STATUS_CHANGED = rec.InstrumentStatusChanged.__name__
_BOOK_METRICS_EVERY_S = 1.0
# How often a builder that writes nothing (only clock ticks and engine bookkeeping come)
# checks that Redis still holds its views.
VIEWS_CHECK_EVERY_S = 1.0
# Events read from the log per page of a rebuild (only the types the books use).
REBUILD_PAGE = 2000
_REBUILD_FILTER = EventFilter(
    event_types=(
        rec.BookLevelsChanged.__name__,
        rec.TradeExecuted.__name__,
        rec.InstrumentStatusChanged.__name__,
        *sorted(MONEY_EVENT_TYPES),
    )
)
# A batch is written again after a loss at most this many times in a row.
_LOSSES_PER_BATCH = 3


class RedisViewsLost(Exception):
    """Redis no longer holds the views this builder wrote (it restarted empty, say)."""


class RedisViewBuilder(ProjectionBuilder):
    """Keeps the Redis book views; `redis` is a `redis.asyncio.Redis` client.

    `event_store` is where a rebuild reads the log after Redis lost the views; without it
    (tests that drive the builder alone) views missing at the first load are built by the
    subscription itself, and a loss later is raised as `RedisViewsLost`. `clock` (seconds,
    monotonic) paces the idle check and the book gauges.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        live: LiveFeeds | None = None,
        key_prefix: str = DEFAULT_PREFIX,
        recent_trades: int = DEFAULT_RECENT_TRADES,
        name: str = BUILDER_NAME,
        log_identity: str | None = None,
        event_store: EventStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        # Set by the runner from PostgreSQL before the first load; None skips the check.
        self.log_identity = log_identity
        self.event_store = event_store
        self._redis = redis
        self._live = live
        self._keys = RedisKeys(key_prefix)
        self._recent_trades = recent_trades
        self._clock = clock
        self.reducer = BooksReducer(recent_trades)
        # Every balance, in memory like the books (a change is a delta on the last value).
        self.balances = BalancesReducer()
        self._balance_changes: list[BalanceKey] = []
        self._unpublished_balances: list[BalanceView] = []
        # Instruments whose status an admin set (absent: TRADING), and the batch's changes.
        self.statuses: dict[str, InstrumentStatusView] = {}
        self._status_changes: list[InstrumentStatusView] = []
        self._unpublished_statuses: list[InstrumentStatusView] = []
        self._unpublished_trades: list[TradeView] = []
        self._unpublished_updates: list[BookUpdate] = []
        # Book gauges: when each instrument's were last set, the ones changed since, and
        # the timer of the trailing update that publishes those.
        self._book_metrics_at: dict[str, float] = {}
        self._books_changed: set[str] = set()
        self._trailing_book_metrics: asyncio.TimerHandle | None = None
        # The epoch of the views the memory mirrors and the position of memory and Redis;
        # `_owed`: the position the subscription feeding this builder is at (what the views
        # must hold before its next batch), known once a load has returned (`_started`).
        self._epoch: str | None = None
        self._position: LogPosition | None = None
        self._owed: LogPosition | None = None
        self._started = False
        self._ready = True
        # The memory may differ from Redis (a write or a load failed half way): reload it
        # before the next batch.
        self._memory_unsure = False
        self._verified_at = clock()
        self._changes = BookChanges()

    @property
    def keys(self) -> RedisKeys:
        return self._keys

    # -- loading and rebuilding -----------------------------------------------------------

    async def load_checkpoint(self) -> LogPosition | None:
        """Make the memory equal the views in Redis, rebuilding them from the log first
        when Redis lost them or holds less than this builder had already written."""
        self._memory_unsure = True  # until this load has completed
        owed = self._owed if self._started else None
        await self._forget_views_of_another_log()
        keys = self._keys
        epoch, marker, token = await self._redis.mget(
            keys.epoch, keys.rebuilding, keys.checkpoint(self.name)
        )
        if text_of(epoch) is None:
            await self._rebuild_from_nothing(owed, had_views=self._started or token is not None)
        else:
            await self._load_from_redis()
            self._epoch = text_of(epoch)
            marker_text = text_of(marker)
            if marker_text is not None:  # a rebuild was interrupted: finish it
                await self._replay_up_to(LogPosition.parse(marker_text), "resumed")
            elif owed is not None and (self._position is None or self._position < owed):
                # Redis holds older views than this builder had written (restored from a
                # snapshot of itself, say): bring them up to where the builder was.
                await self._redis.set(keys.rebuilding, owed.to_token())
                await self._replay_up_to(owed, "behind")
            else:
                self._set_ready(True)
        self._started = True
        self._owed = self._position
        self._memory_unsure = False
        self._verified_at = self._clock()
        return self._position

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

    async def _load_from_redis(self) -> None:
        """Reload the books from Redis (the memory must equal what Redis holds)."""
        keys = self._keys
        reducer = BooksReducer(self._recent_trades)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.checkpoint(self.name))
            pipe.smembers(keys.instruments)
            pipe.smembers(keys.balance_users)
            pipe.hgetall(keys.instrument_statuses)
            token, raw_instruments, raw_users, raw_statuses = await pipe.execute()
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
            book.last_price = None if not last_price else Decimal(last_price)
            book.recent_trades.extend(trade_from_json(raw) for raw in raw_trades)
        self.reducer = reducer
        self.balances = await self._load_balances(sorted(text_of(raw) or "" for raw in raw_users))
        self.statuses = {
            instrument: parse_status_value(instrument, value)
            for instrument, value in ((text_of(k) or "", v) for k, v in raw_statuses.items())
        }
        self._unpublished_trades, self._unpublished_updates = [], []
        self._unpublished_balances, self._balance_changes = [], []
        self._status_changes = []
        text = text_of(token)
        self._position = None if text is None else LogPosition.parse(text)

    async def _load_balances(self, users: list[str]) -> BalancesReducer:
        """Every user's balances, as Redis holds them."""
        balances: dict[BalanceKey, BalanceState] = {}
        for start in range(0, len(users), 500):
            chunk = users[start : start + 500]
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id in chunk:
                    pipe.hgetall(self._keys.balances(user_id))
                hashes = await pipe.execute()
            for user_id, raw in zip(chunk, hashes, strict=True):
                for raw_asset, value in raw.items():
                    asset = text_of(raw_asset) or ""
                    view = parse_balance_value(user_id, asset, value)
                    balances[(user_id, asset)] = BalanceState(
                        user_id,
                        asset,
                        view.available,
                        view.held,
                        view.updated_at,
                        LogPosition.parse(view.position),
                    )
        return BalancesReducer(balances)

    async def _rebuild_from_nothing(self, owed: LogPosition | None, had_views: bool) -> None:
        """Redis holds no views (never built, or lost): start them again from nothing, up to
        where this builder was (`owed`), or to the log's head for a builder that has applied
        nothing yet (what its subscription then brings up to the head is skipped as known)."""
        if self._started and owed is not None:
            target: LogPosition | None = owed
        elif self.event_store is not None:
            target = await self.event_store.head_position()
        else:
            target = None  # no store to read: the subscription builds them from the start
        if target is not None and self.event_store is None:
            raise RedisViewsLost("Redis lost the book views and no event store to rebuild from")
        if had_views:
            logger.warning(
                "redis_views_lost",
                builder=self.name,
                rebuild_to=None if target is None else target.to_token(),
            )
        await drop_redis_views(self._redis, self._keys.prefix)
        epoch = uuid.uuid4().hex
        async with self._redis.pipeline(transaction=True) as pipe:
            if self.log_identity is not None:
                pipe.set(self._keys.log_identity, self.log_identity)
            pipe.set(self._keys.epoch, epoch)
            if target is not None:
                pipe.set(self._keys.rebuilding, target.to_token())
            await pipe.execute()
        self._epoch = epoch
        self.reducer = BooksReducer(self._recent_trades)
        self.balances = BalancesReducer()
        self.statuses = {}
        self._unpublished_trades, self._unpublished_updates = [], []
        self._unpublished_balances, self._balance_changes = [], []
        self._status_changes = []
        self._position = None
        if target is None:
            self._set_ready(True)
            return
        await self._replay_up_to(target, "lost" if had_views else "empty")

    async def _replay_up_to(self, target: LogPosition, reason: str) -> None:
        """Read the log from the views' position up to `target` into memory and Redis (one
        MULTI per page), then clear the rebuilding mark."""
        if self.event_store is None:
            raise RedisViewsLost("the book views need a rebuild and there is no event store")
        if self._position is not None and target < self._position:
            target = self._position  # never move the checkpoint back
        self._set_ready(False)
        metrics.record_redis_views_rebuild(reason)
        started = time.perf_counter()
        events_read = 0
        carried: list[RecordedEvent] = []
        cursor = self._position
        while True:
            page = await self.event_store.read_all(cursor, _REBUILD_FILTER, REBUILD_PAGE)
            events_read += len(page)
            finished = not page or target <= page[-1].position
            if page:
                cursor = page[-1].position
            events = carried + [event for event in page if event.position <= target]
            carried = []
            if not finished:
                # The page may end inside a log transaction: keep its tail for the next one,
                # so a transaction's book updates carry its position as they do live.
                last = transaction_of(events[-1])
                cut = len(events)
                while cut > 0 and last is not None and transaction_of(events[cut - 1]) == last:
                    cut -= 1
                events, carried = events[:cut], events[cut:]
            if events or finished:
                self._reduce(events)
                await self._write(events[-1].position if not finished else target, finished)
                self._unpublished_trades, self._unpublished_updates = [], []
                self._unpublished_balances, self._unpublished_statuses = [], []
            if finished:
                break
        self._set_ready(True)
        # Building views Redis never held (a first start) is routine; anything else is news.
        log = logger.info if reason == "empty" else logger.warning
        log(
            "redis_views_rebuilt",
            builder=self.name,
            reason=reason,
            up_to=target.to_token(),
            events=events_read,
            seconds=round(time.perf_counter() - started, 3),
        )

    def _set_ready(self, ready: bool) -> None:
        """Whether the views are whole; on becoming so, the live books and the book gauges
        restart from them."""
        self._ready = ready
        metrics.set_redis_views_ready(ready)
        if ready:
            self._books_changed.update(self.reducer.books)
            self.flush_book_metrics()
        if self._live is None:
            return
        if ready:
            for instrument, book in self.reducer.books.items():
                self._live.reset_book(
                    instrument, book.levels(BUY), book.levels(SELL), book.sequence, book.position
                )
            self._live.reset_balances(
                [state.to_view() for state in self.balances.balances.values()]
            )
            self._live.reset_instrument_statuses(list(self.statuses.values()))
        self._live.set_books_ready(ready)

    # -- applying ---------------------------------------------------------------------------

    async def apply_batch(self, events: Sequence[RecordedEvent]) -> None:
        for _attempt in range(_LOSSES_PER_BATCH):
            if self._memory_unsure:
                await self.load_checkpoint()
            position = self._position
            # Events the views already hold (a write whose answer was lost) are not news.
            fresh = [e for e in events if position is None or position < e.position]
            if not fresh:
                return
            self._reduce(fresh)
            try:
                await self._write(fresh[-1].position, finished_rebuild=False)
            except RedisViewsLost:
                logger.warning("redis_views_lost_at_batch", builder=self.name)
                self._memory_unsure = True
                continue
            self._owed = self._position
            self._books_changed.update(self._changes.touched_instruments)
            self.flush_book_metrics()
            return
        raise RedisViewsLost(f"Redis lost the book views {_LOSSES_PER_BATCH} times in a row")

    def _reduce(self, events: Sequence[RecordedEvent]) -> None:
        """Apply `events` to memory (which is then ahead of Redis until `_write`)."""
        self._memory_unsure = True
        reducer = self.reducer
        balances = self.balances
        status_changes: list[InstrumentStatusView] = []
        for event in events:
            if event.type in MONEY_EVENT_TYPES:
                balances.apply(event)
            elif event.type == _STATUS_CHANGED:
                changed = record_of(event)
                assert isinstance(changed, rec.InstrumentStatusChanged)
                status = status_view(changed, event.position)
                self.statuses[status.instrument] = status
                status_changes.append(status)
            else:
                reducer.apply(event)
        self._changes = reducer.take_changes()
        self._status_changes = status_changes
        self._balance_changes = balances.take().changed

    async def _write(self, checkpoint: LogPosition, finished_rebuild: bool) -> None:
        """Write what `_reduce` changed and `checkpoint` in one MULTI/EXEC, which first
        reads the epoch and the checkpoint: if they are not the ones this builder wrote last,
        Redis lost the views (or went back to older ones): `RedisViewsLost`."""
        changes: BookChanges = self._changes
        reducer = self.reducer
        keys = self._keys
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.epoch)
            pipe.get(keys.checkpoint(self.name))
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
            trades_by_instrument: dict[str, list[TradeView]] = {}
            for trade in changes.trades:
                trades_by_instrument.setdefault(trade.instrument, []).append(trade)
            for instrument, trades in trades_by_instrument.items():
                pipe.lpush(keys.trades(instrument), *(trade_to_json(t) for t in trades))
                pipe.ltrim(keys.trades(instrument), 0, self._recent_trades - 1)
            if changes.touched_instruments:
                pipe.sadd(keys.instruments, *changes.touched_instruments)
            balance_views = [self.balances.balances[key].to_view() for key in self._balance_changes]
            by_user: dict[str, dict[FieldT, EncodableT]] = {}
            for view in balance_views:
                by_user.setdefault(view.user_id, {})[view.asset] = balance_value(view)
            for user_id, values in by_user.items():
                pipe.hset(keys.balances(user_id), mapping=values)
            if by_user:
                pipe.sadd(keys.balance_users, *by_user)
            status_changes = self._status_changes
            if status_changes:
                pipe.hset(
                    keys.instrument_statuses,
                    mapping={s.instrument: status_value(s) for s in status_changes},
                )
            for instrument in changes.touched_instruments:
                book = reducer.book(instrument)
                meta: dict[FieldT, EncodableT] = {
                    "sequence": str(book.sequence),
                    "position": book.position,
                }
                if book.last_price is not None:
                    meta["last_price"] = str(book.last_price)
                pipe.hset(keys.meta(instrument), mapping=meta)
            pipe.set(keys.checkpoint(self.name), checkpoint.to_token())
            if finished_rebuild:
                pipe.delete(keys.rebuilding)
            results = await pipe.execute()
        if not self._holds_our_views(results[0], results[1]):
            # Written onto views that are not ours (Redis restarted empty, say): those carry
            # no epoch (or an older checkpoint), so the next load rebuilds them.
            raise RedisViewsLost("Redis no longer holds the views this builder wrote")
        self._position = checkpoint
        self._memory_unsure = False
        self._verified_at = self._clock()
        self._unpublished_trades = changes.trades
        self._unpublished_updates = changes.updates
        self._unpublished_balances = balance_views
        self._unpublished_statuses = status_changes

    async def after_commit(self) -> None:
        trades, self._unpublished_trades = self._unpublished_trades, []
        updates, self._unpublished_updates = self._unpublished_updates, []
        balances, self._unpublished_balances = self._unpublished_balances, []
        statuses, self._unpublished_statuses = self._unpublished_statuses, []
        if self._live is not None:
            for status in statuses:
                self._live.publish_instrument_status(status)
            for balance in balances:
                self._live.publish_balance(balance)
            # A trade is published before the book update of the same input: by the time a
            # client sees the level shrink it has seen the trade that shrank it.
            for trade in trades:
                self._live.publish_trade(trade)
            for update in updates:
                self._live.publish_book_update(update)
        if self._clock() - self._verified_at >= VIEWS_CHECK_EVERY_S:
            await self._check_views()

    async def _check_views(self) -> None:
        """Between batches: notice that Redis lost the views and rebuild them now, while the
        memory is exactly at the last batch. An outage is left to the next batch's write."""
        self._verified_at = self._clock()
        keys = self._keys
        try:
            epoch, marker, token = await self._redis.mget(
                keys.epoch, keys.rebuilding, keys.checkpoint(self.name)
            )
            if marker is None and self._holds_our_views(epoch, token):
                return
            logger.warning("redis_views_lost_while_idle", builder=self.name)
            await self.load_checkpoint()
        except (redis.exceptions.RedisError, OSError) as error:
            self._memory_unsure = True  # a rebuild may have stopped half way
            logger.info(
                "redis_views_check_failed", builder=self.name, error=f"{type(error).__name__}"
            )

    def _holds_our_views(self, epoch: bytes | str | None, checkpoint: bytes | str | None) -> bool:
        """Whether Redis's epoch and checkpoint are the ones this builder wrote last."""
        position = None if self._position is None else self._position.to_token()
        return text_of(epoch) == self._epoch and text_of(checkpoint) == position

    # -- book gauges --------------------------------------------------------------------------

    def flush_book_metrics(self) -> None:
        """Set the gauges of every book changed since they were last set, at most once per
        `_BOOK_METRICS_EVERY_S` per instrument; the books held back are set by one trailing
        update when their interval has passed, so the gauges always end at the book."""
        if not self._ready:
            return  # the memory is being rebuilt: set them once it is whole
        now = self._clock()
        next_due = math.inf
        for instrument in sorted(self._books_changed):
            due = self._book_metrics_at.get(instrument, -math.inf) + _BOOK_METRICS_EVERY_S
            if now < due:
                next_due = min(next_due, due)
                continue
            self._books_changed.discard(instrument)
            self._book_metrics_at[instrument] = now
            book = self.reducer.book(instrument)
            metrics.observe_book(
                instrument,
                [(level.price, level.quantity) for level in book.levels(BUY)],
                [(level.price, level.quantity) for level in book.levels(SELL)],
            )
        if next_due < math.inf and self._trailing_book_metrics is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (a caller driving the flush itself)
            self._trailing_book_metrics = loop.call_later(
                next_due - now, self._trailing_flush_book_metrics
            )

    def _trailing_flush_book_metrics(self) -> None:
        self._trailing_book_metrics = None
        self.flush_book_metrics()


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
