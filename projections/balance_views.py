"""Queries on the money views: an account's balances, its ledger, instrument statuses.

Balances are read from Redis (one hash per user, read in one MULTI/EXEC with the views'
epoch and rebuilding mark, as the books are); when Redis cannot serve them (the views are
lost or being rebuilt, or Redis is unreachable) they are read from PostgreSQL instead, which
holds the same balances. Read-your-writes: wait for both builders (`progress.wait_for`
without `names`) before reading balances, since either may answer; the ledger and the
statuses are PostgreSQL's (wait for the PostgreSQL builder).

The ledger is most recent first with keyset pagination on `entry_id`, as `list_orders`.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import redis.asyncio as aioredis
import redis.exceptions
import structlog

from projections.readers import decode_page_token, encode_page_token, page_size_of
from projections.redis_keys import DEFAULT_PREFIX, RedisKeys, parse_balance_value, text_of
from projections.views import BalanceView, InstrumentStatusView, LedgerEntryView

logger = structlog.get_logger(__name__)

_LEDGER_FIELDS = (
    "entry_id, user_id, asset, cause, available_change, held_change, reference, at, position"
)
_LEDGER_TOKEN = "ledger"


def _entry_of(row: asyncpg.Record) -> LedgerEntryView:
    return LedgerEntryView(
        entry_id=row["entry_id"],
        user_id=row["user_id"],
        asset=row["asset"],
        cause=row["cause"],
        available_change=row["available_change"],
        held_change=row["held_change"],
        reference=row["reference"],
        at=row["at"],
        position=row["position"],
    )


class BalanceViews:
    """Reads balances (Redis, else PostgreSQL), ledger entries and instrument statuses."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis | None = None,
        key_prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._keys = RedisKeys(key_prefix)

    async def balances(self, user_id: str) -> list[BalanceView]:
        """`user_id`'s balance in every asset it has had one in, by asset."""
        from_redis = await self._balances_from_redis(user_id)
        if from_redis is not None:
            return from_redis
        return await self.balances_from_postgres(user_id)

    async def balances_from_postgres(self, user_id: str) -> list[BalanceView]:
        rows = await self._pool.fetch(
            "SELECT user_id, asset, available, held, updated_at, position FROM view_balances"
            " WHERE user_id = $1 ORDER BY asset",
            user_id,
        )
        return [
            BalanceView(
                row["user_id"],
                row["asset"],
                row["available"],
                row["held"],
                row["updated_at"],
                row["position"],
            )
            for row in rows
        ]

    async def _balances_from_redis(self, user_id: str) -> list[BalanceView] | None:
        """None when Redis cannot serve them (no Redis, views not whole, Redis down)."""
        if self._redis is None:
            return None
        keys = self._keys
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(keys.balances(user_id))
                pipe.mget(keys.epoch, keys.rebuilding)
                raw, (epoch, rebuilding) = await pipe.execute()
        except (redis.exceptions.RedisError, OSError) as error:
            logger.info("balances_from_postgres", reason=type(error).__name__)
            return None
        if epoch is None or rebuilding is not None:
            return None
        views = [
            parse_balance_value(user_id, text_of(asset) or "", value)
            for asset, value in raw.items()
        ]
        return sorted(views, key=lambda view: view.asset)

    async def ledger(
        self,
        user_id: str,
        asset: str | None,
        page_size: int,
        page_token: str | None,
    ) -> tuple[list[LedgerEntryView], str]:
        """One page of `user_id`'s ledger entries (of one asset, or all), most recent first,
        and the next page's token ("" on the last page). Page size 0 means 100, capped at
        1000; a token this reader did not make raises `InvalidPageToken`."""
        size = page_size_of(page_size)
        after = decode_page_token(_LEDGER_TOKEN, page_token)
        conditions = ["user_id = $1"]
        arguments: list[Any] = [user_id]
        if asset:
            arguments.append(asset)
            conditions.append(f"asset = ${len(arguments)}")
        if after is not None:
            arguments.append(after)
            conditions.append(f"entry_id < ${len(arguments)}")
        arguments.append(size + 1)
        rows = await self._pool.fetch(
            f"SELECT {_LEDGER_FIELDS} FROM view_ledger_entries"
            f" WHERE {' AND '.join(conditions)}"
            f" ORDER BY entry_id DESC LIMIT ${len(arguments)}",
            *arguments,
        )
        page = rows[:size]
        token = encode_page_token(_LEDGER_TOKEN, page[-1]["entry_id"]) if len(rows) > size else ""
        return [_entry_of(row) for row in page], token

    async def instrument_statuses(self) -> dict[str, InstrumentStatusView]:
        """Every instrument whose status an admin set, by symbol (absent: TRADING)."""
        rows = await self._pool.fetch(
            "SELECT instrument, status, updated_at, position FROM view_instrument_status"
        )
        return {
            row["instrument"]: InstrumentStatusView(
                row["instrument"], row["status"], row["updated_at"], row["position"]
            )
            for row in rows
        }
