"""Rebuild the read side: drop the views and their checkpoints, replay the log to its head.

    python -m server.rebuild            # uses DATABASE_URL / REDIS_URL / EVENT_STORE_URL

Stop the service's projections first (or run the service with PROJECTIONS_ENABLED=0): two
builders writing the same views would race. The views come out identical to the ones the
running builders kept (same rows, same keyset numbers, same book sequences), because both
are pure functions of the log.

An event a builder cannot apply stops the rebuild there: it prints the builder, the
event's position, type, stream and id, and the error, and exits with status 1 (the views
then hold everything before that event's transaction; run it again once the event or the
code is fixed).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from projections.builder import DEFAULT_BATCH_MAX, run_builders
from projections.postgres_schema import load_log_identity
from projections.postgres_views import PostgresViewBuilder, drop_views
from projections.progress import ProjectionProgress
from projections.redis_keys import DEFAULT_PREFIX
from projections.redis_views import RedisViewBuilder, drop_redis_views
from server.eventstore.port import EventStore, LogPosition


@dataclass(frozen=True)
class RebuildReport:
    head: LogPosition | None
    events: int
    seconds: float


async def rebuild(
    event_store: EventStore,
    pg_pool: asyncpg.Pool,
    redis: aioredis.Redis,
    *,
    key_prefix: str = DEFAULT_PREFIX,
    batch_max: int = DEFAULT_BATCH_MAX,
) -> RebuildReport:
    """Drop both views and replay the log up to its current head into fresh ones."""
    started = time.perf_counter()
    postgres_builder = PostgresViewBuilder(pg_pool)
    redis_builder = RedisViewBuilder(redis, key_prefix=key_prefix, event_store=event_store)
    async with pg_pool.acquire() as connection:
        await drop_views(connection, (postgres_builder.name,))
    await drop_redis_views(redis, key_prefix)
    await postgres_builder.migrate()
    async with pg_pool.acquire() as connection:
        redis_builder.log_identity = await load_log_identity(connection)
    head = await event_store.head_position()
    progress = ProjectionProgress()
    if head is not None:
        await run_builders(
            (postgres_builder, redis_builder), event_store, progress, batch_max, stop_at=head
        )
    return RebuildReport(
        head=head,
        events=progress.events_applied(postgres_builder.name),
        seconds=time.perf_counter() - started,
    )


if __name__ == "__main__":
    # The command moved to the composition root: the read side imports no settings, no
    # embedded servers and no event-store adapter (docs/projections.md, "Rebuilding").
    sys.exit("moved: run `python -m server.rebuild`")
