"""`KurrentDBEventStore`: the event store port on KurrentDB (EventStoreDB) via kurrentdbclient.

Mapping onto the port:
- expected versions: ANY / NO_STREAM / STREAM_EXISTS map to `StreamState`; an int is the
  exact current version, as in KurrentDB;
- positions: `LogPosition(commit_position, prepare_position)`;
- filters: stream-name prefixes (or, without them, event-type prefixes) are filtered on the
  server; the exact event-type check is done here;
- atomic multi-stream appends use `multi_append_to_stream` (KurrentDB 25.1+); an older
  server answers UNIMPLEMENTED and `UnsupportedOperation` is raised;
- KurrentDB answers an append with a commit position only, so the versions and positions
  of the events just written are read back (by event id) to build the `AppendResult`.

Tested by the contract suite when KURRENTDB_URI is set (docs/eventstore.md).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
import orjson
from kurrentdbclient import AsyncKurrentDBClient, StreamState
from kurrentdbclient import NewEvent as KurrentNewEvent
from kurrentdbclient import RecordedEvent as KurrentRecordedEvent
from kurrentdbclient.events import NewEvents
from kurrentdbclient.exceptions import (
    GrpcError,
    NotFoundError,
    WrongCurrentVersionError,
)

from server.eventstore.port import (
    ANY,
    AppendResult,
    EventFilter,
    EventStore,
    EventStoreError,
    Expectation,
    ExpectedVersion,
    LogPosition,
    NewEvent,
    RecordedEvent,
    StreamAppend,
    UnsupportedOperation,
    WrongExpectedVersion,
)

_STREAM_STATES = {
    ExpectedVersion.ANY: StreamState.ANY,
    ExpectedVersion.NO_STREAM: StreamState.NO_STREAM,
    ExpectedVersion.STREAM_EXISTS: StreamState.EXISTS,
}
_READ_BACK_PAGE = 100


def _current_version(expected: Expectation) -> int | StreamState:
    if isinstance(expected, ExpectedVersion):
        return _STREAM_STATES[expected]
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise ValueError(f"expected version must be an ExpectedVersion or int >= 0: {expected!r}")
    return expected


def _to_kurrent(event: NewEvent) -> KurrentNewEvent:
    return KurrentNewEvent(
        type=event.type,
        data=orjson.dumps(event.data),
        metadata=orjson.dumps(event.metadata),
        content_type="application/json",
        id=event.event_id,
    )


def _json(payload: bytes) -> dict[str, Any]:
    if not payload:
        return {}
    decoded = orjson.loads(payload)
    return decoded if isinstance(decoded, dict) else {"value": decoded}


def _recorded(event: KurrentRecordedEvent) -> RecordedEvent:
    return RecordedEvent(
        event_id=event.id,
        stream=event.stream_name,
        version=event.stream_position,
        position=LogPosition(event.commit_position, event.prepare_position),
        type=event.type,
        data=_json(event.data),
        metadata=_json(event.metadata),
        recorded_at=event.recorded_at or datetime.now(UTC),
    )


def _actual_version(error: WrongCurrentVersionError) -> int:
    actual = error.actual_version
    return actual if isinstance(actual, int) and actual >= 0 else -1


def _is_unimplemented(error: Exception) -> bool:
    cause = error.__cause__
    if isinstance(cause, grpc.aio.AioRpcError | grpc.Call):
        return bool(cause.code() == grpc.StatusCode.UNIMPLEMENTED)
    return "UNIMPLEMENTED" in str(error).upper()


def _server_filter(event_filter: EventFilter | None) -> dict[str, Any]:
    """kurrentdbclient filter arguments; what they cannot express is checked here after."""
    if event_filter is None:
        return {}
    if event_filter.stream_prefixes:
        return {
            "filter_include": event_filter.stream_prefixes,
            "filter_by_stream_name": True,
            "filter_by_prefix": True,
        }
    if event_filter.event_types:
        return {"filter_include": event_filter.event_types, "filter_by_prefix": True}
    return {}


class KurrentDBEventStore(EventStore):
    """The event store on a KurrentDB server (see the module docstring)."""

    def __init__(self, client: AsyncKurrentDBClient) -> None:
        self._client = client

    @classmethod
    async def open(cls, uri: str, **_options: Any) -> KurrentDBEventStore:
        client = AsyncKurrentDBClient(uri)
        await client.connect()
        return cls(client)

    async def close(self) -> None:
        await self._client.close()

    # --- writing ---------------------------------------------------------------------

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: Expectation = ANY,
    ) -> AppendResult:
        current_version = _current_version(expected_version)
        if not events:
            return await self._empty_append(stream, expected_version)
        try:
            await self._client.append_to_stream(
                stream, events=[_to_kurrent(e) for e in events], current_version=current_version
            )
        except WrongCurrentVersionError as error:
            raise WrongExpectedVersion(stream, expected_version, _actual_version(error)) from None
        return await self._read_back(stream, events, expected_version)

    async def append_multi(self, appends: Sequence[StreamAppend]) -> list[AppendResult]:
        streams = [part.stream for part in appends]
        if len(set(streams)) != len(streams):
            raise ValueError("an atomic multi-stream append names each stream once")
        if not appends:
            return []
        expected_by_stream = {part.stream: part.expected_version for part in appends}
        batches = [
            NewEvents(
                stream_name=part.stream,
                events=[_to_kurrent(e) for e in part.events],
                current_version=_current_version(part.expected_version),
            )
            for part in appends
        ]
        try:
            await self._client.multi_append_to_stream(batches)
        except WrongCurrentVersionError as error:
            stream = error.stream_name or ""
            raise WrongExpectedVersion(
                stream, expected_by_stream.get(stream, ANY), _actual_version(error)
            ) from None
        except GrpcError as error:
            if _is_unimplemented(error):
                raise UnsupportedOperation(
                    "this KurrentDB server has no multi-stream append (KurrentDB 25.1+ needed)"
                ) from error
            raise
        return [
            await self._read_back(part.stream, part.events, part.expected_version)
            for part in appends
        ]

    async def _empty_append(self, stream: str, expected: Expectation) -> AppendResult:
        version = await self._client.get_current_version(stream)
        current = version if isinstance(version, int) else -1
        satisfied = (
            expected is ExpectedVersion.ANY
            or (expected is ExpectedVersion.NO_STREAM and current == -1)
            or (expected is ExpectedVersion.STREAM_EXISTS and current >= 0)
            or expected == current
        )
        if not satisfied:
            raise WrongExpectedVersion(stream, expected, current)
        return AppendResult(stream, current + 1, current, ())

    async def _read_back(
        self, stream: str, events: Sequence[NewEvent], expected: Expectation
    ) -> AppendResult:
        """Find the appended events (by id) to report their versions and positions."""
        wanted = [event.event_id for event in events]
        if isinstance(expected, int) or expected is ExpectedVersion.NO_STREAM:
            first = expected + 1 if isinstance(expected, int) else 0
            found = await self._client.get_stream(stream, stream_position=first, limit=len(wanted))
        else:  # ANY / STREAM_EXISTS: search back from the end (others may have appended)
            found = await self._search_backwards(stream, wanted)
        if [event.id for event in found] != wanted:
            raise EventStoreError(f"appended events not found when reading {stream!r} back")
        return AppendResult(
            stream=stream,
            first_version=found[0].stream_position,
            last_version=found[-1].stream_position,
            positions=tuple(LogPosition(e.commit_position, e.prepare_position) for e in found),
        )

    async def _search_backwards(
        self, stream: str, wanted: list[Any]
    ) -> tuple[KurrentRecordedEvent, ...]:
        position: int | None = None
        while True:
            page = await self._client.get_stream(
                stream, stream_position=position, backwards=True, limit=_READ_BACK_PAGE
            )
            for index, event in enumerate(page):
                if event.id == wanted[0]:
                    # `page` runs newest first: our events are this one and those before it.
                    ours = list(reversed(page[max(0, index - len(wanted) + 1) : index + 1]))
                    if len(ours) < len(wanted):
                        return tuple(
                            await self._client.get_stream(
                                stream, stream_position=event.stream_position, limit=len(wanted)
                            )
                        )
                    return tuple(ours)
            if len(page) < _READ_BACK_PAGE or page[-1].stream_position == 0:
                return ()
            position = page[-1].stream_position - 1

    # --- reading ---------------------------------------------------------------------

    async def read_stream(
        self, stream: str, from_version: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        try:
            found = await self._client.get_stream(
                stream, stream_position=max(from_version, 0), limit=limit or sys.maxsize
            )
        except NotFoundError:
            return []
        return [_recorded(event) for event in found if event.stream_position >= from_version]

    async def read_all(
        self,
        after: LogPosition | None = None,
        filter: EventFilter | None = None,
        limit: int = 1000,
    ) -> list[RecordedEvent]:
        selected: list[RecordedEvent] = []
        cursor = after
        while len(selected) < limit:
            page_size = limit - len(selected) + 1
            page = [
                event
                async for event in await self._client.read_all(
                    commit_position=cursor.tx if cursor else None,
                    limit=page_size,
                    **_server_filter(filter),
                )
            ]
            page_start = cursor
            for event in page:
                recorded = _recorded(event)
                if cursor is not None and recorded.position <= cursor:
                    continue
                cursor = recorded.position
                if filter is None or filter.matches(recorded.stream, recorded.type):
                    selected.append(recorded)
                    if len(selected) == limit:
                        break
            if len(page) < page_size or cursor == page_start:
                break  # the end of the log, or a page with nothing new (never loop on it)
        return selected

    async def head_position(self) -> LogPosition | None:
        page = [event async for event in await self._client.read_all(backwards=True, limit=1)]
        if not page:
            return None
        return LogPosition(page[0].commit_position, page[0].prepare_position)

    # --- subscribing -----------------------------------------------------------------

    async def subscribe_all(
        self,
        after: LogPosition | None = None,
        filter: EventFilter | None = None,
        min_wait_s: float = 0.0,  # server push (or memory): no read per commit to spare
    ) -> AsyncIterator[RecordedEvent]:
        subscription = await self._client.subscribe_to_all(
            commit_position=after.tx if after else None, **_server_filter(filter)
        )
        async with subscription:
            async for event in subscription:
                if event.is_checkpoint or event.is_caught_up or event.is_fell_behind:
                    continue
                recorded = _recorded(event)
                # The server resumes from the commit position alone: skip what was seen.
                if after is not None and recorded.position <= after:
                    continue
                if filter is None or filter.matches(recorded.stream, recorded.type):
                    yield recorded

    async def subscribe_stream(
        self, stream: str, from_version: int = 0
    ) -> AsyncIterator[RecordedEvent]:
        # A stream subscription starts after the given version, so ask for the one before.
        start = from_version - 1 if from_version > 0 else None
        subscription = await self._client.subscribe_to_stream(stream, stream_position=start)
        async with subscription:
            async for event in subscription:
                if event.is_checkpoint or event.is_caught_up or event.is_fell_behind:
                    continue
                if event.stream_position >= from_version:
                    yield _recorded(event)
