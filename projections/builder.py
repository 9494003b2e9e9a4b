"""The loop every projection builder shares: subscribe from its checkpoint, apply in batches.

A builder reads the whole log (unfiltered, so that its progress reaches every position a
query may wait for) from its own checkpoint (`load_checkpoint`), and for each batch of
events that arrived together writes its view change and its new checkpoint atomically
(`apply_batch`), then reports progress. A reader task drains the subscription into a
bounded queue so that a batch is "everything that is already here, up to about
`batch_max`, cut at a transaction boundary": small when the log is quiet, large when it is
busy or catching up.

A builder that cannot apply an event stops at it: the batch is applied again one log
transaction at a time, so everything before the failing transaction is committed, the
failing event is named (`ProjectionBuilder.locate_failure` narrows a transaction of several
events down to one), and `EventNotApplied` is raised with the builder's checkpoint just
before it. `run_builders` reports it to `ConsumerFailures` and either stops (a rebuild) or
lets the other builders go on without it (`on_stuck`: the runner retries it alone).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from projections.log_events import PROJECTED_EVENT_TYPES
from projections.progress import ProjectionProgress
from server.eventstore.port import EventStore, LogPosition, RecordedEvent
from server.observability import metrics
from server.observability.consumer_failures import ConsumerFailures
from server.observability.tracing import record_batch_spans

logger = structlog.get_logger(__name__)

DEFAULT_BATCH_MAX = 2000

_END = object()


def consumer_of(builder_name: str) -> str:
    """The `consumer` label of a builder's metrics and failure reports."""
    return f"projection:{builder_name}"


class EventNotApplied(Exception):
    """`builder` cannot apply `event`: its checkpoint stays just before it.

    `cause` is what applying it raised (also the exception's `__cause__`).
    """

    def __init__(self, builder: str, event: RecordedEvent, cause: BaseException) -> None:
        self.builder = builder
        self.event = event
        self.cause = cause
        super().__init__(
            f"{consumer_of(builder)} cannot apply {event.type} at {event.position} "
            f"(stream {event.stream}, event id {event.event_id}): "
            f"{type(cause).__name__}: {str(cause)[:500]}"
        )


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

    async def locate_failure(self, events: Sequence[RecordedEvent]) -> int | None:
        """The index of the first event of `events` (one log transaction, whose
        `apply_batch` failed) that cannot be applied, found without changing the view;
        None when the builder cannot tell (the transaction's first event is reported)."""
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


async def run_builders(
    builders: Sequence[ProjectionBuilder],
    event_store: EventStore,
    progress: ProjectionProgress,
    batch_max: int = DEFAULT_BATCH_MAX,
    stop_at: LogPosition | None = None,
    *,
    failures: ConsumerFailures | None = None,
    on_stuck: Callable[[ProjectionBuilder], None] | None = None,
) -> None:
    """Run `builders`, each from its own checkpoint, on ONE subscription of the log.

    Every event is read and decoded once, from the oldest checkpoint, and handed to each
    builder whose checkpoint is behind it (each has its own bounded queue, so the slowest
    one back-pressures the reading). Runs until cancelled, until every builder has passed
    `stop_at`, or until one fails: then the others are stopped too and the failure is
    raised (a restart resumes each from its own checkpoint, so nothing is applied twice).

    A builder stopped by an event it cannot apply (`EventNotApplied`) is reported to
    `failures`; with `on_stuck` it leaves this run (`on_stuck(builder)` is called) and the
    others go on; the run returns once no builder is left. Each committed batch is also
    reported to `failures` (`passed`), which is how a stuck builder is seen to resume.
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
            _consume(feed, event_store, progress, batch_max, stop_at, reader, failures),
            name=f"projection-{feed.builder.name}",
        )
        for feed in feeds
    ]
    builder_of = {task: feed.builder for task, feed in zip(consumers, feeds, strict=True)}
    try:
        pending: set[asyncio.Task[None]] = set(consumers)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if isinstance(error, EventNotApplied):
                    if failures is not None:
                        failures.failed(consumer_of(error.builder), error.event, error.cause)
                    if on_stuck is not None:
                        on_stuck(builder_of[task])  # its feed is finished: the rest go on
                        continue
                task.result()  # one builder failed: stop them all, raise its failure
    finally:
        for task in consumers:
            await cancel_for_sure(task)
        await cancel_for_sure(reader)


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
    failures: ConsumerFailures | None,
) -> None:
    builder = feed.builder
    batches = _TransactionBatches(event_store, feed.queue, batch_max)
    try:
        while True:
            batch = await batches.next()
            if batch:
                started = time.perf_counter()
                try:
                    await _apply(builder, batch)
                except Exception as error:
                    await _apply_by_transaction(builder, batch, error, progress, failures)
                else:
                    await _applied(builder, batch, progress, failures)
                logger.debug(
                    "projection_batch",
                    builder=builder.name,
                    events=len(batch),
                    seconds=round(time.perf_counter() - started, 6),
                    waiting=batches.waiting,
                )
            if batches.ended:
                await asyncio.wait({reader})
                reader.result()  # re-raise the subscription's failure
                return
            if stop_at is not None and stop_at <= batch[-1].position:
                return
    finally:
        feed.finish()


async def cancel_for_sure(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait until it is done, cancelling again if it swallowed it.

    On Python 3.11 `asyncio.wait_for` can swallow a cancellation that races with its inner
    future completing; a subscription waiting that way would then run on forever.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.2)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


async def _apply(builder: ProjectionBuilder, events: Sequence[RecordedEvent]) -> None:
    """Apply and commit `events` (nothing to write when none of them changes a view)."""
    if not any(event.type in PROJECTED_EVENT_TYPES for event in events):
        return
    started_ns = time.time_ns()
    await builder.apply_batch(events)
    # One span per command trace in the batch, so the view update joins the trace of the
    # PlaceOrder that caused it (free while tracing is off).
    record_batch_spans(
        f"projection.{builder.name}",
        (event.metadata for event in events),
        started_ns,
        {"events": len(events)},
    )


async def _applied(
    builder: ProjectionBuilder,
    events: Sequence[RecordedEvent],
    progress: ProjectionProgress,
    failures: ConsumerFailures | None,
) -> None:
    """What follows a committed batch: progress, live feeds, metrics."""
    # A batch of nothing but other events (clock ticks, engine progress) changes no view:
    # the checkpoint may stay behind it (re-reading it is harmless), but the progress moves
    # on, so read-your-writes can wait on any position.
    position = events[-1].position
    progress.advance(builder.name, position, events=len(events))
    if failures is not None:
        failures.passed(consumer_of(builder.name), position)
    await builder.after_commit()
    # Lag is measured against the log's head by the runner's LagWatcher.
    metrics.record_consumer_processed(consumer_of(builder.name), len(events))


def transactions_of(events: Sequence[RecordedEvent]) -> list[list[RecordedEvent]]:
    """`events` cut into their log transactions (an event with none is one on its own)."""
    groups: list[list[RecordedEvent]] = []
    for event in events:
        tx = transaction_of(event)
        if groups and tx is not None and transaction_of(groups[-1][-1]) == tx:
            groups[-1].append(event)
        else:
            groups.append([event])
    return groups


async def _apply_by_transaction(
    builder: ProjectionBuilder,
    batch: Sequence[RecordedEvent],
    error: Exception,
    progress: ProjectionProgress,
    failures: ConsumerFailures | None,
) -> None:
    """`batch` failed as a whole: apply it again one log transaction at a time (each still
    whole), up to the one that fails, and raise `EventNotApplied` naming its failing event.
    Returns when every transaction went through (the failure did not come back)."""
    unapplied = batch[0]
    try:
        # A failed batch may have changed the builder's memory: back to what the view holds.
        await builder.load_checkpoint()
        for group in transactions_of(batch):
            unapplied = group[0]
            try:
                await _apply(builder, group)
            except Exception as group_error:
                event = await _failing_event(builder, group)
                raise EventNotApplied(builder.name, event, group_error) from group_error
            await _applied(builder, group, progress, failures)
    except EventNotApplied:
        raise
    except Exception as retry_error:
        # Not even that could be done (the view's store is unreachable, say): the builder
        # is stopped at the first event it has not applied.
        raise EventNotApplied(builder.name, unapplied, retry_error) from retry_error
    logger.warning(
        "projection_batch_applied_on_retry",
        builder=builder.name,
        events=len(batch),
        error=f"{type(error).__name__}: {str(error)[:300]}",
    )


async def _failing_event(
    builder: ProjectionBuilder, transaction: Sequence[RecordedEvent]
) -> RecordedEvent:
    if len(transaction) == 1:
        return transaction[0]
    try:
        index = await builder.locate_failure(transaction)
    except Exception:
        logger.warning("projection_failure_not_located", builder=builder.name, exc_info=True)
        index = None
    return transaction[0 if index is None else index]
