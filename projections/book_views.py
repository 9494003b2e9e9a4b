"""Queries on the Redis book views: aggregated book, last price, recent trades.

A book is read in one MULTI/EXEC (both sides and the meta hash), so bids, asks, sequence
and last price always come from the same committed batch of the builder. The same
MULTI/EXEC reads the views' epoch and rebuilding mark (projections.redis_keys): without
the epoch (Redis lost the views) or with the mark (they are being rebuilt from the log) the
book is not served: `BookViewsNotReady`, which the service answers with UNAVAILABLE.
"""

from __future__ import annotations

from decimal import Decimal

import redis.asyncio as aioredis

from projections.redis_keys import (
    DEFAULT_PREFIX,
    RedisKeys,
    parse_level_member,
    parse_status_value,
    text_of,
    trade_from_json,
)
from projections.views import BUY, SELL, BookView, InstrumentStatusView, PriceLevel, TradeView


class BookViewsNotReady(Exception):
    """The book views cannot be read now (Redis lost them and they are being rebuilt):
    answer "not ready" (the service: UNAVAILABLE), never an empty or partial book."""


NOT_READY = "the order books are being rebuilt"
TRADING = "TRADING"


def _levels(members: list[bytes | str]) -> tuple[PriceLevel, ...]:
    return tuple(PriceLevel(*parse_level_member(member)) for member in members)


class BookViews:
    """Reads the book views kept by `RedisViewBuilder` (same `key_prefix`)."""

    def __init__(self, redis: aioredis.Redis, key_prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self._keys = RedisKeys(key_prefix)

    async def get_book(self, instrument: str, depth: int | None = None) -> BookView:
        """`depth` levels a side (None or 0: all), best first, with sequence and last price."""
        stop = depth - 1 if depth else -1
        keys = self._keys
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrevrange(keys.side(instrument, BUY), 0, stop)
            pipe.zrange(keys.side(instrument, SELL), 0, stop)
            pipe.hmget(keys.meta(instrument), ["sequence", "last_price"])
            pipe.mget(keys.epoch, keys.rebuilding)
            pipe.hget(keys.instrument_statuses, instrument)
            bids, asks, (sequence, last_price), readiness, status = await pipe.execute()
        _check_ready(readiness)
        last_price_text = text_of(last_price)
        return BookView(
            instrument=instrument,
            bids=_levels(bids),
            asks=_levels(asks),
            sequence=int(text_of(sequence) or 0),
            last_price=Decimal(last_price_text) if last_price_text else None,
            status=TRADING if status is None else parse_status_value(instrument, status).status,
        )

    async def instrument_statuses(self) -> dict[str, InstrumentStatusView]:
        """Every instrument whose status an admin set (absent: TRADING), by symbol."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._keys.instrument_statuses)
            pipe.mget(self._keys.epoch, self._keys.rebuilding)
            raw, readiness = await pipe.execute()
        _check_ready(readiness)
        statuses = (parse_status_value(text_of(k) or "", v) for k, v in raw.items())
        return {status.instrument: status for status in statuses}

    async def last_price(self, instrument: str) -> Decimal | None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(self._keys.meta(instrument), "last_price")
            pipe.mget(self._keys.epoch, self._keys.rebuilding)
            raw, readiness = await pipe.execute()
        _check_ready(readiness)
        text = text_of(raw)
        return Decimal(text) if text else None

    async def recent_trades(self, instrument: str, limit: int = 100) -> list[TradeView]:
        """The most recent trades, newest first (at most the builder's cap)."""
        if limit <= 0:
            return []
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lrange(self._keys.trades(instrument), 0, limit - 1)
            pipe.mget(self._keys.epoch, self._keys.rebuilding)
            raw, readiness = await pipe.execute()
        _check_ready(readiness)
        return [trade_from_json(item) for item in raw]


def _check_ready(readiness: list[bytes | None]) -> None:
    """Epoch and rebuilding mark, as read with the view: raise unless the views are whole."""
    epoch, rebuilding = readiness
    if epoch is None or rebuilding is not None:
        raise BookViewsNotReady(NOT_READY)
