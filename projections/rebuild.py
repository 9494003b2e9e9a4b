"""Rebuild the read side: drop the views and their checkpoints, replay the log to its head.

    python -m projections.rebuild            # uses DATABASE_URL / REDIS_URL / EVENT_STORE_URL

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

import asyncio
import sys
import time
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from projections.builder import DEFAULT_BATCH_MAX, EventNotApplied, consumer_of, run_builders
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


def _stopped_report(error: EventNotApplied) -> str:
    event = error.event
    return "\n".join(
        (
            f"rebuild stopped: {consumer_of(error.builder)} cannot apply an event",
            f"  position  {event.position.to_token()}",
            f"  type      {event.type}",
            f"  stream    {event.stream}",
            f"  event id  {event.event_id}",
            f"  reason    {type(error.cause).__name__}: {str(error.cause)[:500]}",
            "The views hold everything before that event's transaction. Fix the event (or the"
            " code) and run the rebuild again.",
        )
    )


async def _main() -> None:
    from server.embedded import resolve_service_urls
    from server.eventstore import open_event_store
    from server.settings import Settings

    urls = resolve_service_urls()
    settings = Settings.from_env().with_urls(urls.database_url, urls.redis_url)
    event_store = await open_event_store(settings.resolved_event_store_url)
    pg_pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    redis = aioredis.from_url(settings.redis_url)
    try:
        report = await rebuild(event_store, pg_pool, redis)
    except EventNotApplied as error:
        print(_stopped_report(error), file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        await redis.aclose()
        await pg_pool.close()
        await event_store.close()
    rate = report.events / report.seconds if report.seconds else 0.0
    print(
        f"rebuilt the views up to {report.head.to_token() if report.head else 'an empty log'}: "
        f"{report.events} events in {report.seconds:.2f} s ({rate:,.0f} events/s)"
    )


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
