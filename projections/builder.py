"""The loop every projection builder shares: subscribe from its checkpoint, apply in batches.

A builder reads the whole log (unfiltered, so that its progress reaches every position a
query may wait for) from its own checkpoint (`load_checkpoint`), and for each batch of
events that arrived together writes its view change and its new checkpoint atomically
(`apply_batch`), then reports progress. A reader task drains the subscription into a
bounded queue so that a batch is "everything that is already here, up to about
`batch_max`, cut at a transaction boundary": small when the log is quiet, large when it is
busy or catching up.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from projections.log_events import PROJECTED_EVENT_TYPES
from projections.progress import ProjectionProgress
from server.eventstore.port import EventStore, LogPosition, RecordedEvent
from server.observability import metrics
from server.observability.tracing import record_batch_spans

logger = structlog.get_logger(__name__)

DEFAULT_BATCH_MAX = 2000

_END = object()


class ProjectionBuilder(abc.ABC):
    """A process application that keeps one view from the log."""

    name: str

    @abc.abstractmethod
    async def load_checkpoint(self) -> LogPosition | None:
        """The last position whose effects the view holds (None: nothing applied yet)."""

    @abc.abstractmethod
    async def apply_batch(self, events: Sequence[RecordedEvent]) -> None:
        """Apply `events` and save the last one's position, atomically with the view."""

    async def after_commit(self) -> None:
        """Hook run after each committed batch (live-feed publication)."""
        return None


def transaction_of(event: RecordedEvent) -> Any:
    """The log transaction an event was written in (None when the position has none)."""
    return getattr(event.position, "tx", None)


class _TransactionBatches:
    """Cuts the subscription into batches that end on a transaction boundary.

    An atomic append (e.g. the engine runner's results for a batch of inputs) is one
    transaction; applying it whole means a view never shows half of it, and the batches,
    hence the book sequence numbers, depend on the log alone, not on timing. A batch ends
    when the next event belongs to another transaction, or when the store says that no
    event of the last one's transaction follows it.
    """

    def __init__(self, event_store: EventStore, queue: asyncio.Queue[Any], batch_max: int):
        self._event_store = event_store
        self._queue = queue
        self._batch_max = batch_max
        self._carry: RecordedEvent | None = None
        self.ended = False

    async def next(self) -> list[RecordedEvent]:
        """The next batch (empty once the subscription has ended)."""
        first = self._carry
        self._carry = None
        if first is None:
            item = await self._queue.get()
            if item is _END:
                self.ended = True
                return []
            first = item
        batch: list[RecordedEvent] = [first]
        while True:
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is _END:
                    self.ended = True
                    return batch
                if self._is_boundary(batch, item):
                    self._carry = item
                    return batch
                batch.append(item)
            if transaction_of(batch[-1]) is None:
                return batch
            if not await self._event_store.transaction_may_continue(batch[-1].position):
                return batch
            # The transaction goes on beyond what we hold: wait for the rest of it.
            item = await self._queue.get()
            if item is _END:
                self.ended = True
                return batch
            if transaction_of(item) != transaction_of(batch[-1]):
                self._carry = item
                return batch
            batch.append(item)

    def _is_boundary(self, batch: list[RecordedEvent], item: RecordedEvent) -> bool:
        return len(batch) >= self._batch_max and (
            transaction_of(item) is None or transaction_of(item) != transaction_of(batch[-1])
        )

    @property
    def waiting(self) -> int:
        return self._queue.qsize() + (self._carry is not None)


async def run_builder(
    builder: ProjectionBuilder,
    event_store: EventStore,
    progress: ProjectionProgress,
    batch_max: int = DEFAULT_BATCH_MAX,
    stop_at: LogPosition | None = None,
) -> None:
    """Run `builder` from its checkpoint until cancelled (or until it has passed `stop_at`)."""
    await run_builders((builder,), event_store, progress, batch_max, stop_at)


async def run_builders(
    builders: Sequence[ProjectionBuilder],
    event_store: EventStore,
    progress: ProjectionProgress,
    batch_max: int = DEFAULT_BATCH_MAX,
    stop_at: LogPosition | None = None,
) -> None:
    """Run `builders`, each from its own checkpoint, on ONE subscription of the log.

    Every event is read and decoded once, from the oldest checkpoint, and handed to each
    builder whose checkpoint is behind it (each has its own bounded queue, so the slowest
    one back-pressures the reading). Runs until cancelled, until every builder has passed
    `stop_at`, or until one fails: then the others are stopped too and the failure is
    raised (a restart resumes each from its own checkpoint, so nothing is applied twice).
    """
    checkpoints: list[LogPosition | None] = []
    for builder in builders:
        checkpoint = await builder.load_checkpoint()
        progress.register(builder.name, checkpoint)
        checkpoints.append(checkpoint)
    feeds = [
        _Feed(builder, checkpoint, asyncio.Queue(maxsize=batch_max * 2))
        for builder, checkpoint in zip(builders, checkpoints, strict=True)
        if stop_at is None or checkpoint is None or checkpoint < stop_at
    ]
    if not feeds:
        return
    start: LogPosition | None = None
    if all(feed.checkpoint is not None for feed in feeds):
        start = min(feed.checkpoint for feed in feeds if feed.checkpoint is not None)

    async def pump() -> None:
        try:
            async for event in event_store.subscribe_all(start):
                for feed in feeds:
                    if feed.wants(event):
                        await feed.queue.put(event)
        except asyncio.CancelledError:
            raise  # the consumers stopped us: nobody waits for the end marker
        except BaseException:
            await _end_feeds(feeds)
            raise
        await _end_feeds(feeds)

    reader = asyncio.create_task(pump(), name="projection-reader")
    consumers = [
        asyncio.create_task(
            _consume(feed, event_store, progress, batch_max, stop_at, reader),
            name=f"projection-{feed.builder.name}",
        )
        for feed in feeds
    ]
    try:
        pending: set[asyncio.Task[None]] = set(consumers)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # one builder failed: stop them all, raise its failure
    finally:
        for task in consumers:
            await _cancel_for_sure(task)
        await _cancel_for_sure(reader)


class _Feed:
    """One builder's share of the subscription."""

    def __init__(
        self,
        builder: ProjectionBuilder,
        checkpoint: LogPosition | None,
        queue: asyncio.Queue[Any],
    ) -> None:
        self.builder = builder
        self.checkpoint = checkpoint
        self.queue = queue
        self.done = False  # past `stop_at`: the reader no longer feeds it

    def wants(self, event: RecordedEvent) -> bool:
        """Whether `event` is news to this builder (after its checkpoint, still fed)."""
        return not self.done and (self.checkpoint is None or self.checkpoint < event.position)

    def finish(self) -> None:
        """Stop being fed; empty the queue so a reader blocked on it goes on."""
        self.done = True
        while not self.queue.empty():
            self.queue.get_nowait()


async def _end_feeds(feeds: Sequence[_Feed]) -> None:
    for feed in feeds:
        if not feed.done:
            await feed.queue.put(_END)


async def _consume(
    feed: _Feed,
    event_store: EventStore,
    progress: ProjectionProgress,
    batch_max: int,
    stop_at: LogPosition | None,
    reader: asyncio.Task[None],
) -> None:
    builder = feed.builder
    batches = _TransactionBatches(event_store, feed.queue, batch_max)
    try:
        while True:
            batch = await batches.next()
            if batch:
                started = time.perf_counter()
                started_ns = time.time_ns()
                if any(event.type in PROJECTED_EVENT_TYPES for event in batch):
                    await builder.apply_batch(batch)
                    # One span per command trace in the batch, so the view update joins
                    # the trace of the PlaceOrder that caused it (free while tracing is off).
                    record_batch_spans(
                        f"projection.{builder.name}",
                        (event.metadata for event in batch),
                        started_ns,
                        {"events": len(batch)},
                    )
                # A batch of nothing but other events (clock ticks, engine progress) changes
                # no view: the checkpoint may stay behind it (re-reading it is harmless), but
                # the progress moves on, so read-your-writes can wait on any position.
                progress.advance(builder.name, batch[-1].position, events=len(batch))
                await builder.after_commit()
                _record_metrics(builder.name, batch, batches.waiting)
                logger.debug(
                    "projection_batch",
                    builder=builder.name,
                    events=len(batch),
                    seconds=round(time.perf_counter() - started, 6),
                    behind_s=round((datetime.now(UTC) - batch[-1].recorded_at).total_seconds(), 6),
                )
            if batches.ended:
                await asyncio.wait({reader})
                reader.result()  # re-raise the subscription's failure
                return
            if stop_at is not None and stop_at <= batch[-1].position:
                return
    finally:
        feed.finish()


async def _cancel_for_sure(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait until it is done, cancelling again if it swallowed it.

    On Python 3.11 `asyncio.wait_for` can swallow a cancellation that races with its inner
    future completing; a subscription waiting that way would then run on forever.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.2)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


def _record_metrics(name: str, batch: Sequence[RecordedEvent], events_waiting: int) -> None:
    """Projection lag: events received but not applied yet, and the age of the last applied
    event while some are waiting (0 when caught up, so a quiet log shows no lag)."""
    consumer = f"projection:{name}"
    seconds_behind = 0.0
    if events_waiting:
        recorded_at = batch[-1].recorded_at
        seconds_behind = max(0.0, (datetime.now(UTC) - recorded_at).total_seconds())
    metrics.observe_lag(consumer, events_waiting, seconds_behind)
    metrics.record_consumer_processed(consumer, len(batch))
