"""Group commit: concurrent single-stream appends share transactions.

One event per transaction is capped by the WAL flush (a few thousand commits a second), so
appends wait in a queue and a flusher task takes what is queued (up to a size limit) and
writes it with one statement (postgres/append.py): one round trip, one transaction, one
flush. Each caller still gets its own result, and its own WrongExpectedVersion: the
statement answers per request, so one caller's conflict never fails the others. If the
shared call fails as a whole (a deadlock, say), every request is retried on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from server.consumers.tasks import stop_task
from server.eventstore.port import AppendResult, EventStoreUnavailable
from server.eventstore.postgres.append import AppendOutcome, AppendRequest, call_append
from server.pg_pools import PgConnection

log = structlog.get_logger(__name__)

# A deadlock is worth one more try. (Racing writers, repeated ids and streams created
# meanwhile are settled inside the call since migration 9: postgres/append.py.)
_DEADLOCK_DETECTED = "40P01"
_RETRY_ATTEMPTS = 3

# Two flushers, each taking at most 128 events: a pipeline. One flusher taking everything
# queued made each round serial: the database wrote a batch of 256 while this process
# waited, then this process resumed its 256 callers and queued their next appends while
# the database waited. With two batches in flight each side works while the other does:
# 256 writers went from 20-27k to 28-45k events/s (bench.eventstore's case, interleaved
# runs on a noisy machine; three flushers of up to 96 gave 33-49.5k, within the noise, and
# split a trickle of appends three ways). 16 writers ran alike either way.
DEFAULT_FLUSHERS = 2
DEFAULT_MAX_BATCH_EVENTS = 128


@dataclass(slots=True)
class _QueuedAppend:
    request: AppendRequest
    answer: asyncio.Future[AppendResult]


class GroupCommitWriter:
    """Batches queued appends into shared append calls on pooled connections."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        after_commit: Callable[[PgConnection, list[AppendResult]], Awaitable[None]],
        flushers: int = DEFAULT_FLUSHERS,
        max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS,
    ) -> None:
        self._pool = pool
        self._after_commit = after_commit
        self._flusher_count = flushers
        self._max_batch_events = max_batch_events
        self._queue: deque[_QueuedAppend] = deque()
        self._queued = asyncio.Event()
        self._flushers: list[asyncio.Task[None]] = []
        self._closed = False

    def start(self) -> None:
        for index in range(self._flusher_count):
            self._flushers.append(
                asyncio.create_task(self._flush_forever(), name=f"eventstore-flusher-{index}")
            )

    async def close(self) -> None:
        self._closed = True
        for task in self._flushers:
            await stop_task(task)
        self._flushers.clear()
        while self._queue:
            queued = self._queue.popleft()
            if not queued.answer.done():
                queued.answer.set_exception(EventStoreUnavailable("event store closed"))

    async def append(self, request: AppendRequest) -> AppendResult:
        if self._closed:
            raise EventStoreUnavailable("event store closed")
        answer: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_QueuedAppend(request, answer))
        self._queued.set()
        return await answer

    def _take_batch(self) -> list[_QueuedAppend]:
        batch: list[_QueuedAppend] = []
        event_count = 0
        while self._queue:
            size = len(self._queue[0].request.events)
            if batch and event_count + size > self._max_batch_events:
                break
            queued = self._queue.popleft()
            if queued.answer.done():  # the caller was cancelled: nothing to write
                continue
            batch.append(queued)
            event_count += size
        if not self._queue:
            self._queued.clear()
        return batch

    async def _flush_forever(self) -> None:
        # Each flusher keeps one pooled connection while it lives: acquiring per batch would
        # add the pool's reset round trip to every commit.
        connection: PoolConnectionProxy | None = None
        try:
            while True:
                await self._queued.wait()
                batch = self._take_batch()
                if not batch:
                    continue
                try:
                    if connection is not None and not _usable(connection):  # server hung up
                        await _release_quietly(self._pool, connection)
                        connection = None
                    if connection is None:
                        connection = await self._pool.acquire()
                    await self._flush(connection, batch)
                except asyncio.CancelledError:
                    for queued in batch:
                        if not queued.answer.done():
                            queued.answer.set_exception(EventStoreUnavailable("event store closed"))
                    raise
                except Exception as error:  # e.g. the database is gone: tell every caller
                    for queued in batch:
                        if not queued.answer.done():
                            queued.answer.set_exception(error)
                    if connection is not None and (
                        not isinstance(error, asyncpg.PostgresError) or not _usable(connection)
                    ):
                        # The connection itself may be broken: take a fresh one next time.
                        await _release_quietly(self._pool, connection)
                        connection = None
                    # A flusher never dies of an error: it only stops when cancelled.
                    log.warning("eventstore_group_commit_failed", error=repr(error))
        finally:
            if connection is not None:
                await _release_quietly(self._pool, connection)

    async def _flush(self, connection: PgConnection, batch: list[_QueuedAppend]) -> None:
        requests = [queued.request for queued in batch]
        outcomes: Sequence[AppendOutcome | Exception]
        try:
            outcomes = await call_append_retrying(connection, requests, atomic=False)
        except asyncpg.PostgresError as error:
            if len(batch) == 1:
                raise
            log.info("eventstore_group_commit_split", size=len(batch), error=str(error))
            outcomes = [await self._append_alone(connection, queued) for queued in batch]
        for queued, outcome in zip(batch, outcomes, strict=True):
            _answer(queued, outcome)
        # Callers are answered first; notifying subscribers runs while they resume.
        await self._after_commit(
            connection, [outcome for outcome in outcomes if isinstance(outcome, AppendResult)]
        )

    async def _append_alone(
        self, connection: PgConnection, queued: _QueuedAppend
    ) -> AppendOutcome | Exception:
        try:
            return (await call_append_retrying(connection, [queued.request], atomic=False))[0]
        except asyncpg.PostgresError as error:
            failure: Exception = error
            return failure


async def call_append_retrying(
    connection: PgConnection, requests: list[AppendRequest], atomic: bool
) -> list[AppendOutcome]:
    """`call_append`, tried again (a few times) after a deadlock."""
    for attempt in range(_RETRY_ATTEMPTS):
        try:
            return await call_append(connection, requests, atomic)
        except asyncpg.PostgresError as error:
            if error.sqlstate != _DEADLOCK_DETECTED or attempt == _RETRY_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _usable(connection: PoolConnectionProxy) -> bool:
    """False once the server closed it (the pool may then have taken the proxy back)."""
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:
        return False


async def _release_quietly(pool: asyncpg.Pool, connection: PoolConnectionProxy) -> None:
    with contextlib.suppress(Exception):
        await pool.release(connection, timeout=2)


def _answer(queued: _QueuedAppend, outcome: AppendOutcome | Exception) -> None:
    if queued.answer.done():
        return
    if isinstance(outcome, AppendResult):
        queued.answer.set_result(outcome)
    else:
        queued.answer.set_exception(outcome)
