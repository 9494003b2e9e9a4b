"""Starts and stops the projection builders and the live feeds (the read side's process).

`ProjectionRunner(event_store, pg_pool, redis)` runs the PostgreSQL views builder and the
Redis views builder, each from its own checkpoint, each supervised: a failure is logged
and the builder restarts from its checkpoint after a short back-off (the Redis builder
reloads its memory from Redis, so nothing is applied twice or skipped). Both publish to
one `LiveFeeds`, and report progress to one `ProjectionProgress` that queries wait on.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import redis.asyncio as aioredis
import structlog

from projections.book_views import BookViews
from projections.builder import DEFAULT_BATCH_MAX, ProjectionBuilder, run_builders
from projections.live import DEFAULT_SUBSCRIBER_BUFFER, LiveFeeds
from projections.postgres_schema import load_log_identity
from projections.postgres_views import PostgresViewBuilder
from projections.progress import ProjectionProgress
from projections.readers import OrderViews
from projections.redis_keys import DEFAULT_PREFIX
from projections.redis_views import RedisViewBuilder
from server.eventstore.port import EventStore

logger = structlog.get_logger(__name__)

RESTART_BACKOFF_S = (0.1, 0.5, 1.0, 2.0, 5.0)


class ProjectionRunner:
    """The read side: builders, live feeds, progress and readers, wired together."""

    def __init__(
        self,
        event_store: EventStore,
        pg_pool: asyncpg.Pool,
        redis: aioredis.Redis,
        *,
        key_prefix: str = DEFAULT_PREFIX,
        batch_max: int = DEFAULT_BATCH_MAX,
        subscriber_buffer: int = DEFAULT_SUBSCRIBER_BUFFER,
    ) -> None:
        self.event_store = event_store
        self.pg_pool = pg_pool
        self.redis = redis
        self.batch_max = batch_max
        self.progress = ProjectionProgress()
        self.live = LiveFeeds(subscriber_buffer)
        self.postgres_builder = PostgresViewBuilder(pg_pool, self.live)
        self.redis_builder = RedisViewBuilder(redis, self.live, key_prefix=key_prefix)
        self.order_views = OrderViews(pg_pool)
        self.book_views = BookViews(redis, key_prefix=key_prefix)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def builders(self) -> tuple[ProjectionBuilder, ...]:
        return (self.postgres_builder, self.redis_builder)

    async def start(self) -> None:
        """Migrate the PostgreSQL views, then run every builder in the background."""
        await self.postgres_builder.migrate()
        async with self.pg_pool.acquire() as connection:
            self.redis_builder.log_identity = await load_log_identity(connection)
        for builder in self.builders:
            # Registered before the first load, so an early wait_for waits for it.
            self.progress.register(builder.name)
        # One subscription feeds both builders (each event read and decoded once).
        self._tasks.append(
            asyncio.create_task(self._supervise(self.builders), name="projection-builders")
        )

    async def stop(self) -> None:
        """Stop the builders (a batch in flight is rolled back) and end the live streams."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.live.close()

    async def catch_up(self, timeout: float | None = None) -> bool:
        """Wait until every builder has committed the log's head (True if it did in time).

        The head is what a subscriber can see now; a write still hidden behind an older
        running transaction is not in it. To see one particular write, wait for its
        position with `progress.wait_for` instead.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        reached = None
        while True:
            head = await self.event_store.head_position()
            if head is None or head == reached:
                return True
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            if not await self.progress.wait_for(head, remaining):
                return False
            reached = head

    async def _supervise(self, builders: tuple[ProjectionBuilder, ...]) -> None:
        failures = 0
        while True:
            try:
                await run_builders(builders, self.event_store, self.progress, self.batch_max)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
                failures += 1
                logger.exception(
                    "projection_builder_failed",
                    builders=[builder.name for builder in builders],
                    restart_in_s=delay,
                    failures=failures,
                )
                await asyncio.sleep(delay)
