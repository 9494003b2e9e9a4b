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
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from projections.log_events import PROJECTED_EVENT_TYPES
from projections.progress import ProjectionProgress
from server.eventstore.port import EventStore, LogPosition, RecordedEvent
from server.observability import metrics

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
    when the next event belongs to another transaction, or when the last event is the
    log's head (everything visible is applied).
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
            head = await self._event_store.head_position()
            if head is None or not batch[-1].position < head:
                return batch
            # More is visible than we hold: the transaction may go on; wait for it.
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
    checkpoint = await builder.load_checkpoint()
    progress.register(builder.name, checkpoint)
    if stop_at is not None and checkpoint is not None and stop_at <= checkpoint:
        return
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=batch_max * 2)

    async def pump() -> None:
        try:
            async for event in event_store.subscribe_all(checkpoint):
                await queue.put(event)
        except asyncio.CancelledError:
            raise  # the consumer stopped us: nobody waits for the end marker
        except BaseException:
            await queue.put(_END)
            raise
        await queue.put(_END)

    reader = asyncio.create_task(pump(), name=f"projection-reader-{builder.name}")
    batches = _TransactionBatches(event_store, queue, batch_max)
    try:
        while True:
            batch = await batches.next()
            if batch:
                if any(event.type in PROJECTED_EVENT_TYPES for event in batch):
                    await builder.apply_batch(batch)
                # A batch of nothing but other events (clock ticks, engine progress) changes
                # no view: the checkpoint may stay behind it (re-reading it is harmless), but
                # the progress moves on, so read-your-writes can wait on any position.
                progress.advance(builder.name, batch[-1].position, events=len(batch))
                await builder.after_commit()
                _record_metrics(builder.name, batch, batches.waiting)
            if batches.ended:
                await asyncio.wait({reader})
                reader.result()  # re-raise the subscription's failure
                return
            if stop_at is not None and stop_at <= batch[-1].position:
                return
    finally:
        await _cancel_for_sure(reader)


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
