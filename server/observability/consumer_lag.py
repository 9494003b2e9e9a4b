"""How far each consumer of the log trails the log's head, measured against the head itself.

`LagWatcher` wakes every `interval_s`, asks the event store for its head and, for each
watched consumer (the engine runner, a projection builder), publishes
`exchange_consumer_lag_events` (events of the log the consumer reads, after its position)
and `exchange_consumer_lag_seconds` (age of the first of them; 0 when caught up). Because
both come from the log and not from what the consumer has received, they keep growing
while a consumer is stuck or stopped.

Counting is incremental: a full count (read, capped at `count_cap` events) only when a
consumer is first seen or went back; after that, each round counts the events appended
since the previous head and subtracts those the consumer applied meanwhile (its own
counter), so a consumer far behind costs one short read per round, not a re-count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from server.eventstore.port import EventFilter, EventStore, LogPosition
from server.observability import metrics

log = structlog.get_logger(__name__)

DEFAULT_INTERVAL_S = 1.0
DEFAULT_COUNT_CAP = 100_000


class NotLoaded:
    """A consumer's position before it has loaded its checkpoint: nothing to measure yet."""


NOT_LOADED = NotLoaded()

# What a watched consumer reports, read in one step so the two agree: its position (None:
# nothing applied yet, from the log's start) and how many events it has applied in all.
Reading = tuple[LogPosition | NotLoaded | None, int]


@dataclass
class _Count:
    head: LogPosition
    applied: int
    events: int


@dataclass
class _Watched:
    consumer: str
    read: Callable[[], Reading]
    event_filter: EventFilter | None
    count: _Count | None = None


class LagWatcher:
    """Publishes the lag of the consumers it watches, every `interval_s` until cancelled."""

    def __init__(
        self,
        event_store: EventStore,
        interval_s: float = DEFAULT_INTERVAL_S,
        count_cap: int = DEFAULT_COUNT_CAP,
    ) -> None:
        self._event_store = event_store
        self._interval_s = interval_s
        self._count_cap = count_cap
        self._watched: list[_Watched] = []

    def watch(
        self,
        consumer: str,
        read: Callable[[], Reading],
        event_filter: EventFilter | None = None,
    ) -> None:
        """Measure `consumer`: `read()` gives (position, events applied in all); the
        consumer reads the events `event_filter` selects (None: all of them)."""
        self._watched.append(_Watched(consumer, read, event_filter))

    async def run(self) -> None:
        """Measure every `interval_s` until cancelled (a failed round is logged, not fatal:
        the event store may be down, and the next round tries again)."""
        failing = False
        while True:
            try:
                await self.measure()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not failing:
                    log.warning("consumer_lag_unmeasured", error=repr(error)[:300])
                failing = True
            await asyncio.sleep(self._interval_s)

    async def measure(self) -> None:
        """One round: the head, then each consumer's lag against it."""
        head = await self._event_store.head_position()
        for watched in self._watched:
            await self._measure(watched, head)

    async def _measure(self, watched: _Watched, head: LogPosition | None) -> None:
        position, applied = watched.read()
        if isinstance(position, NotLoaded):
            return
        if head is None or (position is not None and head <= position):
            watched.count = None if head is None else _Count(head, applied, 0)
            metrics.observe_lag(watched.consumer, 0, 0.0)
            return
        first = await self._event_store.read_all(position, watched.event_filter, limit=1)
        if not first or head < first[0].position:
            watched.count = _Count(head, applied, 0)
            metrics.observe_lag(watched.consumer, 0, 0.0)
            return
        previous = watched.count
        if previous is None or applied < previous.applied or head < previous.head:
            events = await self._count(position, head, watched.event_filter, self._count_cap)
        else:
            appended = await self._count(previous.head, head, watched.event_filter, None)
            events = previous.events + appended - (applied - previous.applied)
            if events < 1:  # the consumer moved on between our reads: count again
                events = await self._count(position, head, watched.event_filter, self._count_cap)
        watched.count = _Count(head, applied, events)
        seconds = (datetime.now(UTC) - first[0].recorded_at).total_seconds()
        metrics.observe_lag(watched.consumer, events, max(0.0, seconds))

    async def _count(
        self,
        after: LogPosition | None,
        upto: LogPosition,
        event_filter: EventFilter | None,
        cap: int | None,
    ) -> int:
        """Events after `after` up to `upto` (inclusive), at most `cap` (None: all)."""
        return await self._event_store.count_all(after, upto, event_filter, cap)
