"""`InMemoryEventStore`: the event store port held in this process's memory.

A fake for fast tests of what sits on the port (command handlers, the engine runner, the
view builders), held to the same contract suite as the PostgreSQL adapter. Not for
production: the log lives as long as the object, and no other process can see it.

It answers as the PostgreSQL adapter does:
- expectations, and idempotency: the same event ids, in the same stream at the same
  versions, asked again at an expectation the original satisfied, write nothing and return
  the original result; the same append at another expectation is a `WrongExpectedVersion`;
  ids stored in any other way are an `EventIdConflict`;
- an atomic multi-stream append settles its parts in stream-name order (a plain version
  conflict before an id conflict; the first refusal is raised and nothing is written) and
  writes them in that order;
- data and metadata go through JSON (orjson, as PostgreSQL's adapter), so what cannot be
  encoded is refused at the call and every read hands out fresh dicts of JSON values;
- `recorded_at` is one instant per transaction, as PostgreSQL's `now()`.

Positions are `LogPosition(tx, seq)`: one `tx` per append call that writes events, and a
`seq` counting every event of the log. Everything an append writes is visible when it
returns (there is no transaction horizon), so the head is the last committed position.
Each call yields to the event loop once before it does its work, as a round trip would, so
concurrent callers interleave between calls (never inside one: a call's checks and writes
are one step).
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
import orjson

from server.eventstore.port import (
    ANY,
    STREAM_EXISTS,
    AppendResult,
    EventFilter,
    EventIdConflict,
    EventStore,
    EventStoreUnavailable,
    Expectation,
    ExpectedVersion,
    LogPosition,
    NewEvent,
    RecordedEvent,
    StreamAppend,
    WrongExpectedVersion,
)

# The decoder the PostgreSQL adapter reads its JSON columns with: the same values come out.
_decode_json = msgspec.json.Decoder().decode


class _StoredEvent(msgspec.Struct, frozen=True, gc=False):
    """An event as kept here: its JSON as bytes, so every read decodes fresh dicts."""

    event_id: UUID
    stream: str
    version: int
    position: LogPosition
    type: str
    data: bytes
    metadata: bytes
    recorded_at: datetime

    def recorded(self) -> RecordedEvent:
        return RecordedEvent(
            self.event_id,
            self.stream,
            self.version,
            self.position,
            self.type,
            _decode_json(self.data),
            _decode_json(self.metadata),
            self.recorded_at,
        )


class _Request(msgspec.Struct, frozen=True, gc=False):
    """One stream's append, checked and encoded in the caller's task."""

    stream: str
    expected: Expectation
    events: tuple[NewEvent, ...]
    data: tuple[bytes, ...]
    metadata: tuple[bytes, ...]


def _check_text(what: str, text: str) -> None:
    """Text PostgreSQL's text columns could not hold is refused here too."""
    if "\x00" in text:
        raise ValueError(f"{what} must not contain NUL")
    text.encode()  # a lone surrogate: UnicodeEncodeError, a ValueError


def _checked_expectation(expected: Expectation) -> Expectation:
    if isinstance(expected, ExpectedVersion):
        return expected
    if isinstance(expected, int) and not isinstance(expected, bool) and expected >= 0:
        return int(expected)
    raise ValueError(f"expected version must be an ExpectedVersion or int >= 0: {expected!r}")


def _request(stream: str, events: Sequence[NewEvent], expected: Expectation) -> _Request:
    if not stream:
        raise ValueError("stream name must not be empty")
    _check_text("stream name", stream)
    copied = tuple(events)  # the caller's list may change after the call
    for event in copied:
        _check_text("event type", event.type)
    dumps = orjson.dumps
    return _Request(
        stream,
        _checked_expectation(expected),
        copied,
        tuple(dumps(event.data) for event in copied),
        tuple(dumps(event.metadata) for event in copied),
    )


def _accepts(expected: Expectation, current_version: int) -> bool:
    if expected is ANY:
        return True
    if expected is STREAM_EXISTS:
        return current_version >= 0
    if expected is ExpectedVersion.NO_STREAM:
        return current_version == -1
    return expected == current_version


class InMemoryEventStore(EventStore):
    """The whole log in lists and dicts of this process (see the module docstring)."""

    def __init__(self) -> None:
        self._log: list[_StoredEvent] = []  # in position order
        self._streams: dict[str, list[_StoredEvent]] = {}  # index = version
        self._by_event_id: dict[UUID, _StoredEvent] = {}
        self._last_tx = 0
        self._last_seq = 0
        # Set (and dropped) by the next append; created only when a subscriber waits.
        self._appended: asyncio.Event | None = None
        self._closed = False

    @classmethod
    async def open(cls, url: str = "memory://", **_options: Any) -> InMemoryEventStore:
        """A new, empty log (`url` and options are accepted for `open_event_store`)."""
        return cls()

    async def close(self) -> None:
        self._closed = True
        self._wake_subscribers()

    # --- writing ---------------------------------------------------------------------

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: Expectation = ANY,
    ) -> AppendResult:
        request = _request(stream, events, expected_version)
        await self._round_trip()
        return self._commit([request])[0]

    async def append_multi(self, appends: Sequence[StreamAppend]) -> list[AppendResult]:
        streams = [part.stream for part in appends]
        if len(set(streams)) != len(streams):
            raise ValueError("an atomic multi-stream append names each stream once")
        requests = [_request(part.stream, part.events, part.expected_version) for part in appends]
        if not requests:
            return []
        await self._round_trip()
        return self._commit(requests)

    def _commit(self, requests: Sequence[_Request]) -> list[AppendResult]:
        """Settle every request (raising the first refusal in stream-name order, before
        anything is written), then write the new events as one transaction."""
        settle_order = sorted(range(len(requests)), key=lambda i: requests[i].stream)
        if len(requests) > 1:
            # As PostgreSQL's batch statement: it checks every expectation first, and only
            # a refused part with some of its ids stored (maybe a repeat) is looked at more
            # closely; so a plain version conflict is raised before any id conflict.
            for index in settle_order:
                request = requests[index]
                current_version = self._current_version(request.stream)
                if not _accepts(request.expected, current_version) and not any(
                    event.event_id in self._by_event_id for event in request.events
                ):
                    raise WrongExpectedVersion(request.stream, request.expected, current_version)
        results: list[AppendResult | None] = [None] * len(requests)
        to_write: list[tuple[int, int]] = []  # (request index, the stream's current version)
        claimed: set[UUID] = set()  # ids this call writes
        for index in settle_order:
            request = requests[index]
            repeated = self._repeat_of(request)
            if repeated is not None:
                results[index] = repeated
                continue
            current_version = self._current_version(request.stream)
            if not _accepts(request.expected, current_version):
                raise WrongExpectedVersion(request.stream, request.expected, current_version)
            if not request.events:
                results[index] = AppendResult(
                    request.stream, current_version + 1, current_version, ()
                )
                continue
            ids = {event.event_id for event in request.events}
            if len(ids) < len(request.events) or not ids.isdisjoint(claimed):
                # PostgreSQL's unique index refuses this too (with its own error).
                raise EventIdConflict(request.stream, [e.event_id for e in request.events])
            claimed |= ids
            to_write.append((index, current_version))
        if to_write:
            self._last_tx += 1
            tx = self._last_tx
            recorded_at = datetime.now(UTC)
            for index, current_version in to_write:
                results[index] = self._write(requests[index], current_version, tx, recorded_at)
            self._wake_subscribers()
        return [result for result in results if result is not None]

    def _repeat_of(self, request: _Request) -> AppendResult | None:
        """The original result when `request` repeats an append already stored; None when
        none of its ids is stored; raises when some are stored, but not as this append."""
        if not request.events:
            return None
        stored = [self._by_event_id.get(event.event_id) for event in request.events]
        if all(event is None for event in stored):
            return None
        first = stored[0]
        same_append = first is not None and all(
            event is not None
            and event.stream == request.stream
            and event.version == first.version + offset
            for offset, event in enumerate(stored)
        )
        if not same_append or first is None:
            raise EventIdConflict(request.stream, [event.event_id for event in request.events])
        # PostgreSQL's rule: a repeat at ANY or STREAM_EXISTS, or at the expectation the
        # original met (the version before its first event), gets the original result.
        if request.expected is STREAM_EXISTS or _accepts(request.expected, first.version - 1):
            return AppendResult(
                request.stream,
                first.version,
                first.version + len(stored) - 1,
                tuple(event.position for event in stored if event is not None),
            )
        # The same append, at an expectation it did not have: a version conflict.
        current_version = self._current_version(request.stream)
        raise WrongExpectedVersion(request.stream, request.expected, current_version)

    def _current_version(self, stream: str) -> int:
        return len(self._streams.get(stream, ())) - 1

    def _write(
        self, request: _Request, current_version: int, tx: int, recorded_at: datetime
    ) -> AppendResult:
        stream_events = self._streams.setdefault(request.stream, [])
        positions: list[LogPosition] = []
        for offset, event in enumerate(request.events):
            self._last_seq += 1
            position = LogPosition(tx, self._last_seq)
            stored = _StoredEvent(
                event.event_id,
                request.stream,
                current_version + 1 + offset,
                position,
                event.type,
                request.data[offset],
                request.metadata[offset],
                recorded_at,
            )
            self._log.append(stored)
            stream_events.append(stored)
            self._by_event_id[event.event_id] = stored
            positions.append(position)
        return AppendResult(
            request.stream, current_version + 1, current_version + len(positions), tuple(positions)
        )

    # --- reading ---------------------------------------------------------------------

    async def read_stream(
        self, stream: str, from_version: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must not be negative: {limit}")
        await self._round_trip()
        stream_events = self._streams.get(stream, ())
        start = max(from_version, 0)
        end = len(stream_events) if limit is None else start + limit
        return [event.recorded() for event in stream_events[start:end]]

    async def read_all(
        self,
        after: LogPosition | None = None,
        filter: EventFilter | None = None,
        limit: int = 1000,
    ) -> list[RecordedEvent]:
        if limit < 0:
            raise ValueError(f"limit must not be negative: {limit}")
        await self._round_trip()
        page: list[RecordedEvent] = []
        if limit == 0:
            return page
        for index in range(self._index_after(after), len(self._log)):
            event = self._log[index]
            if filter is None or filter.matches(event.stream, event.type):
                page.append(event.recorded())
                if len(page) == limit:
                    break
        return page

    async def head_position(self) -> LogPosition | None:
        await self._round_trip()
        return self._log[-1].position if self._log else None

    async def transaction_may_continue(self, position: LogPosition) -> bool:
        await self._round_trip()
        index = self._index_after(position)
        return index < len(self._log) and self._log[index].position.tx == position.tx

    def _index_after(self, after: LogPosition | None) -> int:
        """The index in the log of the first event strictly after `after`."""
        if after is None:
            return 0
        return bisect.bisect_right(self._log, after, key=lambda event: event.position)

    # --- subscribing -----------------------------------------------------------------

    async def subscribe_all(
        self,
        after: LogPosition | None = None,
        filter: EventFilter | None = None,
        min_wait_s: float = 0.0,  # server push (or memory): no read per commit to spare
    ) -> AsyncIterator[RecordedEvent]:
        self._check_open()
        index = self._index_after(after)
        log = self._log
        while True:
            if index < len(log):
                event = log[index]
                index += 1
                if filter is None or filter.matches(event.stream, event.type):
                    yield event.recorded()
                    self._check_open()
                continue
            # Nothing runs between the length check above and taking the wake-up here.
            await self._wait_for_append()

    async def subscribe_stream(
        self, stream: str, from_version: int = 0
    ) -> AsyncIterator[RecordedEvent]:
        self._check_open()
        next_version = max(from_version, 0)
        while True:
            stream_events = self._streams.get(stream, ())
            if next_version < len(stream_events):
                yield stream_events[next_version].recorded()
                next_version += 1
                self._check_open()
                continue
            await self._wait_for_append()

    async def _wait_for_append(self) -> None:
        self._check_open()
        if self._appended is None:
            self._appended = asyncio.Event()
        await self._appended.wait()
        self._check_open()

    def _wake_subscribers(self) -> None:
        if self._appended is not None:
            self._appended.set()
            self._appended = None

    # --- the rest ---------------------------------------------------------------------

    async def _round_trip(self) -> None:
        """Let other tasks run, as a call to a server would; then the store must be open."""
        await asyncio.sleep(0)
        self._check_open()

    def _check_open(self) -> None:
        if self._closed:
            raise EventStoreUnavailable("event store closed")
