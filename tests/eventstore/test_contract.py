"""The event store contract: every adapter must pass every test here.

Run against the in-memory fake and PostgreSQL always, and against KurrentDB when
KURRENTDB_URI is set (see tests/eventstore/conftest.py and docs/eventstore.md).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from server.eventstore import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    EventFilter,
    EventStore,
    ExpectedVersion,
    LogPosition,
    NewEvent,
    RecordedEvent,
    StreamAppend,
    WrongExpectedVersion,
)

# A guard against a hang, never an assertion about speed.
HANG_GUARD_S = 120


def events(count: int, event_type: str = "Thing", **data: object) -> list[NewEvent]:
    return [NewEvent(event_type, {"n": index, **data}) for index in range(count)]


async def take(subscription: AsyncIterator[RecordedEvent], count: int) -> list[RecordedEvent]:
    """The next `count` events of a subscription."""

    async def collect() -> list[RecordedEvent]:
        taken: list[RecordedEvent] = []
        async for event in subscription:
            taken.append(event)
            if len(taken) == count:
                break
        return taken

    return await asyncio.wait_for(collect(), HANG_GUARD_S)


async def visible(store: EventStore, position: LogPosition) -> None:
    """Wait until `position` can be read in the global log.

    PostgreSQL shows an event in global order once every transaction older than it has
    ended (cluster-wide), which may be a moment after its append returned.
    """

    async def head_reached() -> None:
        while (head := await store.head_position()) is None or head < position:
            await asyncio.sleep(0.002)

    await asyncio.wait_for(head_reached(), HANG_GUARD_S)


async def read_everything(
    store: EventStore, after: LogPosition | None, event_filter: EventFilter
) -> list[RecordedEvent]:
    found: list[RecordedEvent] = []
    while True:
        page = await store.read_all(after, event_filter, limit=500)
        found.extend(page)
        if len(page) < 500:
            return found
        after = page[-1].position


# --- appending and reading one stream ------------------------------------------------


async def test_append_then_read_stream_returns_events_with_versions_from_zero(
    store: EventStore, prefix: str
) -> None:
    stream = f"{prefix}order-1"
    first = NewEvent("Placed", {"price": "10.5", "lots": 3}, {"correlation_id": "c-1"})
    second = NewEvent("Cancelled", {"reason": "USER"})

    result = await store.append(stream, [first, second], NO_STREAM)

    assert (result.stream, result.first_version, result.last_version) == (stream, 0, 1)
    assert len(result.positions) == 2 and result.positions[0] < result.positions[1]
    recorded = await store.read_stream(stream)
    assert [(e.event_id, e.stream, e.version, e.type) for e in recorded] == [
        (first.event_id, stream, 0, "Placed"),
        (second.event_id, stream, 1, "Cancelled"),
    ]
    assert recorded[0].data == {"price": "10.5", "lots": 3}
    assert recorded[0].metadata == {"correlation_id": "c-1"}
    assert recorded[1].metadata == {}
    assert [e.position for e in recorded] == list(result.positions)
    assert isinstance(recorded[0].recorded_at, datetime)
    assert recorded[0].recorded_at.tzinfo is not None


async def test_read_stream_from_version_and_limit(store: EventStore, prefix: str) -> None:
    stream = f"{prefix}s"
    await store.append(stream, events(5), NO_STREAM)

    assert [e.version for e in await store.read_stream(stream, from_version=3)] == [3, 4]
    assert [e.version for e in await store.read_stream(stream, 1, limit=2)] == [1, 2]
    assert await store.read_stream(stream, from_version=5) == []
    assert await store.read_stream(f"{prefix}missing") == []


# --- expected versions -----------------------------------------------------------------


async def test_no_stream_expectation_on_an_existing_stream_is_refused(
    store: EventStore, prefix: str
) -> None:
    stream = f"{prefix}s"
    await store.append(stream, events(2), NO_STREAM)

    with pytest.raises(WrongExpectedVersion) as refused:
        await store.append(stream, events(1), NO_STREAM)

    assert (refused.value.stream, refused.value.expected, refused.value.actual) == (
        stream,
        ExpectedVersion.NO_STREAM,
        1,
    )
    assert len(await store.read_stream(stream)) == 2


async def test_exact_expected_version_must_be_the_last_version(
    store: EventStore, prefix: str
) -> None:
    stream = f"{prefix}s"
    await store.append(stream, events(3), NO_STREAM)

    with pytest.raises(WrongExpectedVersion) as refused:
        await store.append(stream, events(1), 1)
    assert (refused.value.expected, refused.value.actual) == (1, 2)

    result = await store.append(stream, events(1), 2)
    assert (result.first_version, result.last_version) == (3, 3)


async def test_stream_exists_expectation(store: EventStore, prefix: str) -> None:
    missing = f"{prefix}missing"
    with pytest.raises(WrongExpectedVersion) as refused:
        await store.append(missing, events(1), STREAM_EXISTS)
    assert refused.value.actual == -1
    assert await store.read_stream(missing) == []

    stream = f"{prefix}s"
    await store.append(stream, events(1), NO_STREAM)
    result = await store.append(stream, events(1), STREAM_EXISTS)
    assert result.first_version == 1


async def test_exact_version_on_a_missing_stream_is_refused(store: EventStore, prefix: str) -> None:
    with pytest.raises(WrongExpectedVersion) as refused:
        await store.append(f"{prefix}missing", events(1), 0)
    assert refused.value.actual == -1


async def test_any_expectation_appends_whatever_the_version(store: EventStore, prefix: str) -> None:
    stream = f"{prefix}s"
    first = await store.append(stream, events(1), ANY)
    second = await store.append(stream, events(2), ANY)
    assert (first.first_version, second.first_version, second.last_version) == (0, 1, 2)


async def test_concurrent_appends_one_conflict_does_not_fail_the_others(
    store: EventStore, prefix: str
) -> None:
    await store.append(f"{prefix}taken", events(1), NO_STREAM)
    appends = [store.append(f"{prefix}free-{index}", events(1), NO_STREAM) for index in range(10)]
    appends.insert(5, store.append(f"{prefix}taken", events(1), NO_STREAM))

    outcomes = await asyncio.gather(*appends, return_exceptions=True)

    assert isinstance(outcomes[5], WrongExpectedVersion)
    written = outcomes[:5] + outcomes[6:]
    assert all(not isinstance(outcome, BaseException) for outcome in written)
    assert [o.stream for o in written] == [f"{prefix}free-{i}" for i in range(10)]  # type: ignore[union-attr]
    for index in range(10):
        assert len(await store.read_stream(f"{prefix}free-{index}")) == 1


async def test_an_append_of_no_events_only_checks_the_expectation(
    store: EventStore, prefix: str
) -> None:
    stream = f"{prefix}s"
    empty = await store.append(stream, [], NO_STREAM)
    assert (empty.first_version, empty.last_version, empty.positions) == (0, -1, ())
    await store.append(stream, events(2), NO_STREAM)
    result = await store.append(stream, [], 1)
    assert (result.first_version, result.last_version, result.positions) == (2, 1, ())
    with pytest.raises(WrongExpectedVersion):
        await store.append(stream, [], NO_STREAM)
    assert len(await store.read_stream(stream)) == 2


# --- idempotency -----------------------------------------------------------------------


async def test_reappending_the_same_event_ids_returns_the_original_result(
    store: EventStore, prefix: str
) -> None:
    stream = f"{prefix}s"
    batch = events(3)

    original = await store.append(stream, batch, NO_STREAM)
    repeated = await store.append(stream, batch, NO_STREAM)

    assert repeated == original
    assert [e.event_id for e in await store.read_stream(stream)] == [e.event_id for e in batch]
    tail = events(1)
    original_tail = await store.append(stream, tail, 2)
    assert await store.append(stream, tail, 2) == original_tail
    assert len(await store.read_stream(stream)) == 4


# --- atomic multi-stream appends --------------------------------------------------------


async def test_multi_stream_append_writes_every_stream(store: EventStore, prefix: str) -> None:
    await store.append(f"{prefix}engine", events(1), NO_STREAM)

    results = await store.append_multi(
        [
            StreamAppend(f"{prefix}order-1", events(2), NO_STREAM),
            StreamAppend(f"{prefix}engine", events(1), 0),
            StreamAppend(f"{prefix}trades", events(1), ANY),
        ]
    )

    assert [(r.stream, r.first_version, r.last_version) for r in results] == [
        (f"{prefix}order-1", 0, 1),
        (f"{prefix}engine", 1, 1),
        (f"{prefix}trades", 0, 0),
    ]
    assert [len(r.positions) for r in results] == [2, 1, 1]
    for result in results:
        stored = await store.read_stream(result.stream, result.first_version)
        assert [e.position for e in stored] == list(result.positions)


async def test_a_transaction_may_continue_until_its_last_event(
    store: EventStore, prefix: str
) -> None:
    results = await store.append_multi(
        [
            StreamAppend(f"{prefix}order-1", events(2), NO_STREAM),
            StreamAppend(f"{prefix}trades", events(1), NO_STREAM),
        ]
    )
    positions = sorted(p for result in results for p in result.positions)
    head = await store.head_position()
    while head is None or head < positions[-1]:  # the append may be a moment from visible
        await asyncio.sleep(0.01)
        head = await store.head_position()

    assert [await store.transaction_may_continue(p) for p in positions] == [True, True, False]


async def test_multi_stream_append_with_one_conflict_writes_nothing(
    store: EventStore, prefix: str
) -> None:
    await store.append(f"{prefix}engine", events(2), NO_STREAM)

    with pytest.raises(WrongExpectedVersion) as refused:
        await store.append_multi(
            [
                StreamAppend(f"{prefix}order-1", events(2), NO_STREAM),
                StreamAppend(f"{prefix}engine", events(1), 0),  # stale: it is at 1
                StreamAppend(f"{prefix}trades", events(1), ANY),
            ]
        )

    assert (refused.value.stream, refused.value.actual) == (f"{prefix}engine", 1)
    assert await store.read_stream(f"{prefix}order-1") == []
    assert await store.read_stream(f"{prefix}trades") == []
    assert len(await store.read_stream(f"{prefix}engine")) == 2


# --- the global log ---------------------------------------------------------------------


async def test_read_all_returns_events_in_global_order(store: EventStore, prefix: str) -> None:
    start = await store.head_position()
    appended: list[tuple[str, int]] = []
    for round_number in range(3):
        for name in ("a", "b"):
            stream = f"{prefix}{name}"
            result = await store.append(stream, events(2, round=round_number), ANY)
            appended += [(stream, v) for v in range(result.first_version, result.last_version + 1)]

    await visible(store, result.positions[-1])
    found = await read_everything(store, start, EventFilter(stream_prefixes=(prefix,)))

    assert [(e.stream, e.version) for e in found] == appended
    positions = [e.position for e in found]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert all(LogPosition.parse(p.to_token()) == p for p in positions)


async def test_read_all_filters_by_stream_prefix_and_event_type(
    store: EventStore, prefix: str
) -> None:
    start = await store.head_position()
    await store.append(f"{prefix}order-1", events(1, "Placed") + events(1, "Filled"), ANY)
    await store.append(f"{prefix}trades-X", events(1, "Traded"), ANY)
    await store.append(f"{prefix}order-2", events(1, "Placed"), ANY)
    last = await store.append(f"{prefix}clock", events(1, "Ticked"), ANY)
    await visible(store, last.positions[-1])

    def picked(found: list[RecordedEvent]) -> list[tuple[str, str]]:
        return [(e.stream.removeprefix(prefix), e.type) for e in found]

    orders = EventFilter(stream_prefixes=(f"{prefix}order-", f"{prefix}clock"))
    assert picked(await read_everything(store, start, orders)) == [
        ("order-1", "Placed"),
        ("order-1", "Filled"),
        ("order-2", "Placed"),
        ("clock", "Ticked"),
    ]
    placed_or_traded = EventFilter(event_types=("Placed", "Traded"))
    found = await read_everything(store, start, placed_or_traded)
    mine = [e for e in found if e.stream.startswith(prefix)]
    assert picked(mine) == [("order-1", "Placed"), ("trades-X", "Traded"), ("order-2", "Placed")]
    both = EventFilter(stream_prefixes=(f"{prefix}order-",), event_types=("Placed",))
    assert picked(await read_everything(store, start, both)) == [
        ("order-1", "Placed"),
        ("order-2", "Placed"),
    ]


async def test_read_all_catches_up_from_the_middle(store: EventStore, prefix: str) -> None:
    start = await store.head_position()
    result = await store.append(f"{prefix}s", events(10), NO_STREAM)
    mine = EventFilter(stream_prefixes=(prefix,))
    await visible(store, result.positions[-1])

    rest = await read_everything(store, result.positions[3], mine)
    assert [e.version for e in rest] == [4, 5, 6, 7, 8, 9]
    page = await store.read_all(start, mine, limit=4)
    assert [e.version for e in page] == [0, 1, 2, 3]


async def test_count_all_counts_what_read_all_would_read(store: EventStore, prefix: str) -> None:
    start = await store.head_position()
    await store.append(f"{prefix}order-1", events(2, "Placed") + events(1, "Filled"), ANY)
    middle = await store.append(f"{prefix}trades-X", events(1, "Traded"), ANY)
    last = await store.append(f"{prefix}order-2", events(3, "Placed"), ANY)
    await store.append(f"{prefix}order-3", events(2, "Placed"), ANY)
    await visible(store, last.positions[-1])
    upto = last.positions[-1]

    mine = EventFilter(stream_prefixes=(prefix,))
    orders = EventFilter(stream_prefixes=(f"{prefix}order-",))
    placed = EventFilter(stream_prefixes=(f"{prefix}order-",), event_types=("Placed",))
    assert await store.count_all(start, upto, mine) == 7
    assert await store.count_all(start, upto, orders) == 6
    assert await store.count_all(start, upto, placed) == 5
    assert await store.count_all(middle.positions[0], upto, mine) == 3
    assert await store.count_all(start, upto, mine, cap=4) == 4
    assert await store.count_all(upto, upto, mine) == 0
    everything = await store.count_all(start, upto)
    assert everything >= 7
    assert everything == len(
        [e for e in await read_everything(store, start, EventFilter()) if e.position <= upto]
    )


# --- subscriptions ----------------------------------------------------------------------


async def test_subscribe_stream_delivers_history_then_live(store: EventStore, prefix: str) -> None:
    stream = f"{prefix}s"
    await store.append(stream, events(3), NO_STREAM)
    subscription = store.subscribe_stream(stream, from_version=1)
    try:
        history = await take(subscription, 2)
        await store.append(f"{prefix}other", events(1), NO_STREAM)
        await store.append(stream, events(2), 2)
        live = await take(subscription, 2)
    finally:
        await subscription.aclose()  # type: ignore[attr-defined]

    assert [e.version for e in history + live] == [1, 2, 3, 4]
    assert {e.stream for e in history + live} == {stream}


async def test_subscription_switches_from_history_to_live_under_concurrent_appends(
    store: EventStore, prefix: str
) -> None:
    start = await store.head_position()
    history_count, live_count = 500, 500
    for chunk in range(5):
        await store.append(f"{prefix}h{chunk}", events(history_count // 5), NO_STREAM)
    subscription = store.subscribe_all(start, EventFilter(stream_prefixes=(prefix,)))

    async def keep_appending() -> list[LogPosition]:
        positions: list[LogPosition] = []
        for index in range(live_count):
            result = await store.append(f"{prefix}live-{index % 7}", events(1), ANY)
            positions += result.positions
        return positions

    writer = asyncio.create_task(keep_appending())
    try:
        delivered = await take(subscription, history_count + live_count)
    finally:
        await subscription.aclose()  # type: ignore[attr-defined]
    live_positions = await writer

    positions = [e.position for e in delivered]
    assert positions == sorted(positions)
    assert len(set(positions)) == history_count + live_count
    assert positions[history_count:] == live_positions
    assert [e.stream for e in delivered[:history_count]] == [
        f"{prefix}h{chunk}" for chunk in range(5) for _ in range(history_count // 5)
    ]


async def test_many_concurrent_writers_against_a_live_subscriber(
    store: EventStore, prefix: str
) -> None:
    """16 writers x 300 single-event appends race a live subscriber: it must see every
    event exactly once, in the global order, each writer's events in the order written."""
    writer_count, appends_per_writer = 16, 300
    total = writer_count * appends_per_writer
    start = await store.head_position()
    subscription = store.subscribe_all(start, EventFilter(stream_prefixes=(prefix,)))
    first_delivery = asyncio.create_task(take(subscription, 1))
    await asyncio.sleep(0)  # let the subscriber start its catch-up before writers begin

    async def writer(writer_index: int) -> list[tuple[LogPosition, str, int]]:
        written: list[tuple[LogPosition, str, int]] = []
        for sequence in range(appends_per_writer):
            # Half the writers share streams, so stream row locks are contended too.
            stream = f"{prefix}w{writer_index % 8}"
            event = NewEvent("Written", {"writer": writer_index, "sequence": sequence})
            result = await store.append(stream, [event], ANY)
            written.append((result.positions[0], stream, result.first_version))
        return written

    writers = [asyncio.create_task(writer(index)) for index in range(writer_count)]
    try:
        delivered = await first_delivery
        delivered += await take(subscription, total - 1)
    finally:
        await subscription.aclose()  # type: ignore[attr-defined]
    written_by_writer = await asyncio.gather(*writers)

    positions = [e.position for e in delivered]
    assert len(positions) == total
    assert positions == sorted(positions)
    assert len(set(positions)) == total
    assert len({e.event_id for e in delivered}) == total
    written = {item for per_writer in written_by_writer for item in per_writer}
    assert {(e.position, e.stream, e.version) for e in delivered} == written
    for writer_index in range(writer_count):
        sequences = [e.data["sequence"] for e in delivered if e.data["writer"] == writer_index]
        assert sequences == list(range(appends_per_writer))
    for stream_index in range(8):
        versions = [e.version for e in delivered if e.stream == f"{prefix}w{stream_index}"]
        assert versions == list(range(len(versions)))


async def test_restart_from_a_kept_position_delivers_exactly_the_rest(
    store: EventStore, prefix: str
) -> None:
    mine = EventFilter(stream_prefixes=(prefix,))
    start = await store.head_position()
    await store.append(f"{prefix}s", events(6), NO_STREAM)

    first_run = store.subscribe_all(start, mine)
    processed = await take(first_run, 4)
    # What a consumer keeps beside its results (its checkpoint), as a token.
    kept = processed[-1].position.to_token()
    await first_run.aclose()  # type: ignore[attr-defined]  # the "crash"

    await store.append(f"{prefix}s", events(2), 5)
    resumed_from = LogPosition.parse(kept)
    second_run = store.subscribe_all(resumed_from, mine)
    try:
        rest = await take(second_run, 4)
    finally:
        await second_run.aclose()  # type: ignore[attr-defined]
    assert [e.version for e in processed + rest] == list(range(8))


# --- positions --------------------------------------------------------------------------


def test_log_position_tokens_round_trip_and_order() -> None:
    low, high = LogPosition(7, 99), LogPosition(8, 1)
    assert low < high and max(low, high) == high
    assert LogPosition.parse(low.to_token()) == low
    assert hash(LogPosition(7, 99)) == hash(low)
    for bad in ("", "7", "7:", "x:1", "-1:2", " 7:1", "7:1\n", "\u0667:1", "1" * 21 + ":1"):
        with pytest.raises(ValueError):
            LogPosition.parse(bad)


async def test_unique_stream_names_do_not_collide() -> None:
    # Guards the fixture the suite relies on: each test writes under its own prefix.
    assert len({uuid.uuid4().hex[:10] for _ in range(1000)}) == 1000
