"""Starts and stops the projection builders and the live feeds (the read side's process).

`ProjectionRunner(event_store, pg_pool, redis)` runs the PostgreSQL views builder and the
Redis views builder, each from its own checkpoint, on one shared subscription. Both publish
to one `LiveFeeds`, and report progress to one `ProjectionProgress` that queries wait on.

Supervision: a builder that cannot apply an event (`EventNotApplied`) is stuck at it. It
leaves the shared subscription (the other builder goes on) and is retried alone, from its
checkpoint, with back-off (0.1 s doubling up to `retry_max_s`); each retry reads the log
again, so a repaired event or a fixed cause lets it through. Once it has passed that
event it has resumed, and both run together again. A failure of the subscription itself
restarts the shared run after the same back-off. Nothing is applied twice or skipped: each
restart begins at the builder's checkpoint (the Redis builder reloads its memory from
Redis). Failures and stuck events go to a `ConsumerFailures` (metrics, logs, listeners such
as the service's health), and a `LagWatcher` measures each builder's lag against the log's
head.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import redis.asyncio as aioredis
import structlog

from projections.balance_views import BalanceViews
from projections.book_views import BookViews
from projections.builder import (
    DEFAULT_BATCH_MAX,
    ProjectionBuilder,
    cancel_for_sure,
    consumer_of,
    run_builders,
)
from projections.live import DEFAULT_SUBSCRIBER_BUFFER, LiveFeeds
from projections.postgres_schema import load_log_identity
from projections.postgres_views import PostgresViewBuilder
from projections.progress import ProjectionProgress
from projections.readers import OrderViews
from projections.redis_keys import DEFAULT_PREFIX
from projections.redis_views import RedisViewBuilder
from projections.views import TradeView
from server.consumers.tasks import stop_task
from server.eventstore.port import EventStore, LogPosition
from server.observability import metrics
from server.observability.consumer_failures import ConsumerFailures, StuckEvent
from server.observability.consumer_lag import DEFAULT_INTERVAL_S, NOT_LOADED, LagWatcher, Reading

logger = structlog.get_logger(__name__)

FIRST_RETRY_S = 0.1
DEFAULT_RETRY_MAX_S = 5.0


def retry_delay(failures: int, retry_max_s: float) -> float:
    """Back-off before the next attempt after `failures` failed ones in a row (>= 1)."""
    return min(retry_max_s, FIRST_RETRY_S * 2.0 ** max(0, failures - 1))


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
        failures: ConsumerFailures | None = None,
        retry_max_s: float = DEFAULT_RETRY_MAX_S,
        lag_check_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.event_store = event_store
        self.pg_pool = pg_pool
        self.redis = redis
        self.batch_max = batch_max
        self.progress = ProjectionProgress()
        self.live = LiveFeeds(subscriber_buffer)
        self.postgres_builder = PostgresViewBuilder(pg_pool, self.live)
        # With the event store, so it can rebuild the books when Redis loses them.
        self.redis_builder = RedisViewBuilder(
            redis, self.live, key_prefix=key_prefix, event_store=event_store
        )
        self.order_views = OrderViews(pg_pool)
        self.book_views = BookViews(redis, key_prefix=key_prefix)
        self.balance_views = BalanceViews(pg_pool, redis, key_prefix=key_prefix)
        self.failures = ConsumerFailures() if failures is None else failures
        self.retry_max_s = retry_max_s
        self.lag = LagWatcher(event_store, lag_check_s)
        self._resumed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        for builder in self.builders:
            self.failures.declare(consumer_of(builder.name))
            self.lag.watch(consumer_of(builder.name), self._lag_reading(builder.name))
        self.failures.add_listener(self._on_failure_change)

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
            self.progress.register(builder.name, loaded=False)
        self._tasks.append(asyncio.create_task(self._supervise(), name="projection-builders"))
        self._tasks.append(asyncio.create_task(self.lag.run(), name="projection-lag"))

    async def stop(self) -> None:
        """Stop the builders (a batch in flight is rolled back) and end the live streams."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            await stop_task(task)
        self.live.close()

    async def trades_after(
        self, instrument: str, after: LogPosition, limit: int, timeout: float
    ) -> list[TradeView] | None:
        """The trades a subscriber that resumes after `after` missed, oldest first (None:
        more than `limit`). Call it right after subscribing to the live trades: every trade
        published live before that is by then in the PostgreSQL view too (it waits up to
        `timeout` for that view to reach what the Redis builder has published), so history
        and live together miss none. TimeoutError when the view stays behind."""
        published = self.progress.position(self.redis_builder.name)
        if published is not None and not await self.progress.wait_for(
            published, timeout, names=(self.postgres_builder.name,)
        ):
            raise TimeoutError("the trades view is behind the live feed")
        return await self.order_views.latest_trades_after(instrument, after, limit)

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

    def stuck_builders(self) -> dict[str, StuckEvent]:
        """The builders stopped at an event they cannot apply, by name."""
        stuck = self.failures.stuck
        return {
            builder.name: stuck[consumer_of(builder.name)]
            for builder in self.builders
            if consumer_of(builder.name) in stuck
        }

    def _lag_reading(self, name: str) -> Callable[[], Reading]:
        def read() -> Reading:
            if not self.progress.is_loaded(name):
                return NOT_LOADED, 0
            return self.progress.position(name), self.progress.events_applied(name)

        return read

    def _on_failure_change(self, consumer: str, stuck: StuckEvent | None) -> None:
        if stuck is None and consumer in {consumer_of(b.name) for b in self.builders}:
            self._resumed.set()

    async def _supervise(self) -> None:
        """The healthy builders on one subscription, each stuck one retried alone; after a
        stuck builder has resumed, all of them together again."""
        while True:
            self._resumed.clear()
            await self._run_until_one_resumes()

    async def _run_until_one_resumes(self) -> None:
        tasks: list[asyncio.Task[None]] = []

        def retry_alone(builder: ProjectionBuilder) -> None:
            tasks.append(
                asyncio.create_task(
                    self._retry_alone(builder), name=f"projection-{builder.name}-retry"
                )
            )

        stuck = self.stuck_builders()
        tasks.append(asyncio.create_task(self._run_together(retry_alone), name="projection-shared"))
        for builder in self.builders:
            if builder.name in stuck:
                retry_alone(builder)
        try:
            await self._resumed.wait()
        finally:
            for task in tasks:
                await cancel_for_sure(task)

    async def _run_together(self, retry_alone: Callable[[ProjectionBuilder], None]) -> None:
        """The builders that are not stuck, on one shared subscription (each event read and
        decoded once); a builder that gets stuck leaves it for `retry_alone`."""
        failures = 0
        while True:
            stuck = self.stuck_builders()
            members = tuple(builder for builder in self.builders if builder.name not in stuck)
            if not members:
                return
            try:
                await run_builders(
                    members,
                    self.event_store,
                    self.progress,
                    self.batch_max,
                    failures=self.failures,
                    on_stuck=retry_alone,
                )
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                delay = retry_delay(failures, self.retry_max_s)
                for builder in members:
                    metrics.record_consumer_failure(consumer_of(builder.name))
                # The whole trace once per streak, then one line per failure.
                logger.error(
                    "projection_builders_failed",
                    builders=[builder.name for builder in members],
                    error=f"{type(error).__name__}: {str(error)[:300]}",
                    restart_in_s=delay,
                    failures=failures,
                    exc_info=failures == 1,
                )
                await asyncio.sleep(delay)

    async def _retry_alone(self, builder: ProjectionBuilder) -> None:
        """Retry a stuck builder on a subscription of its own, from its checkpoint, with
        back-off, until it has passed the event it was stuck at (the supervisor then stops
        this task and runs it with the others again)."""
        attempts = 0
        while True:
            attempts += 1
            await asyncio.sleep(retry_delay(attempts, self.retry_max_s))
            try:
                await run_builders(
                    (builder,),
                    self.event_store,
                    self.progress,
                    self.batch_max,
                    failures=self.failures,
                    on_stuck=lambda _builder: None,  # returns: the next attempt follows
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                metrics.record_consumer_failure(consumer_of(builder.name))
                logger.warning(
                    "projection_builder_retry_failed",
                    builder=builder.name,
                    error=f"{type(error).__name__}: {str(error)[:300]}",
                    attempts=attempts,
                )
