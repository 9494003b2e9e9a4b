"""The in-memory fake beyond the shared contract: what PostgreSQL's adapter tests show in
test_postgres.py (id conflicts, repeats, atomic appends), asked of the fake, and what is
its own (one transaction per call, JSON values, closing). No server is needed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from server.eventstore import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    EventIdConflict,
    NewEvent,
    RecordedEvent,
    StreamAppend,
    WrongExpectedVersion,
    open_event_store,
)
from server.eventstore.memory import InMemoryEventStore
from server.eventstore.port import EventStoreUnavailable


@pytest.fixture
async def store() -> AsyncIterator[InMemoryEventStore]:
    event_store = await InMemoryEventStore.open()
    yield event_store
    await event_store.close()


async def test_memory_url_opens_a_new_empty_log_each_time() -> None:
    first, second = await open_event_store("memory://"), await open_event_store("memory://")
    assert isinstance(first, InMemoryEventStore) and isinstance(second, InMemoryEventStore)
    await first.append("s", [NewEvent("X", {})], NO_STREAM)
    assert await second.read_stream("s") == []
    assert await second.head_position() is None


# --- repeats and id conflicts, as PostgreSQL answers them ------------------------------


async def test_a_repeat_is_answered_at_any_expectation_the_original_met(
    store: InMemoryEventStore,
) -> None:
    batch = [NewEvent("X", {}), NewEvent("Y", {})]
    original = await store.append("s", batch, NO_STREAM)

    for expectation in (NO_STREAM, ANY, STREAM_EXISTS):
        assert await store.append("s", batch, expectation) == original
    first_alone = await store.append("s", batch[:1], ANY)
    assert first_alone == AppendResult("s", 0, 0, original.positions[:1])
    assert len(await store.read_stream("s")) == 2


async def test_the_same_append_at_an_expectation_it_did_not_have_is_a_version_conflict(
    store: InMemoryEventStore,
) -> None:
    batch = [NewEvent("X", {}), NewEvent("Y", {})]
    await store.append("s", batch, NO_STREAM)

    for expectation in (0, 1):
        with pytest.raises(WrongExpectedVersion) as refused:
            await store.append("s", batch, expectation)
        assert refused.value.actual == 1


@pytest.mark.parametrize(
    "reuse",
    [
        pytest.param(lambda a, b: ("s", [b, a]), id="other order"),
        pytest.param(lambda a, b: ("s", [a, b, NewEvent("Z", {})]), id="with a new event"),
        pytest.param(lambda a, b: ("elsewhere", [a]), id="other stream"),
        pytest.param(lambda a, b: ("fresh", [NewEvent("Z", {}), a]), id="beside new ids"),
    ],
)
async def test_ids_stored_in_another_way_are_an_id_conflict_and_write_nothing(
    store: InMemoryEventStore, reuse: object
) -> None:
    first, second = NewEvent("X", {}), NewEvent("Y", {})
    await store.append("s", [first, second], NO_STREAM)
    stream, events = reuse(first, second)  # type: ignore[operator]
    head = await store.head_position()

    with pytest.raises(EventIdConflict) as refused:
        await store.append(stream, events, ANY)

    assert refused.value.stream == stream
    assert await store.head_position() == head
    with pytest.raises(EventIdConflict):
        await store.append_multi(
            [StreamAppend("other", [NewEvent("N", {})]), StreamAppend(stream, events)]
        )
    assert await store.head_position() == head


async def test_one_id_twice_in_a_call_is_an_id_conflict(store: InMemoryEventStore) -> None:
    # PostgreSQL refuses it too, through its unique index (asyncpg's UniqueViolationError).
    event = NewEvent("X", {})
    with pytest.raises(EventIdConflict):
        await store.append("s", [event, event], NO_STREAM)
    with pytest.raises(EventIdConflict):
        await store.append_multi([StreamAppend("a", [event]), StreamAppend("b", [event])])
    assert await store.head_position() is None


async def test_an_atomic_append_repeated_whole_or_in_part_writes_only_what_is_missing(
    store: InMemoryEventStore,
) -> None:
    written = StreamAppend("a", [NewEvent("X", {})], NO_STREAM)
    missing = StreamAppend("b", [NewEvent("Y", {})], NO_STREAM)
    first = await store.append_multi([written])

    again = await store.append_multi([written, missing])

    assert again[0] == first[0]
    assert again[1].positions[0].tx != first[0].positions[0].tx
    assert await store.append_multi([written, missing]) == again
    assert [len(await store.read_stream(s)) for s in ("a", "b")] == [1, 1]


async def test_an_atomic_append_names_each_stream_once(store: InMemoryEventStore) -> None:
    with pytest.raises(ValueError):
        await store.append_multi(
            [StreamAppend("a", [NewEvent("X", {})]), StreamAppend("a", [NewEvent("Y", {})])]
        )


async def test_an_atomic_append_refuses_its_first_conflict_in_stream_name_order(
    store: InMemoryEventStore,
) -> None:
    """As PostgreSQL: parts are settled in stream-name order, and a plain version conflict
    comes before an id conflict."""
    stored = NewEvent("X", {})
    await store.append("taken", [stored], NO_STREAM)

    with pytest.raises(WrongExpectedVersion) as refused:
        await store.append_multi(
            [
                StreamAppend("z", [NewEvent("Z", {})], 4),
                StreamAppend("b", [NewEvent("B", {})], 2),
                StreamAppend("a", [stored]),
            ]
        )
    assert refused.value.stream == "b"


# --- transactions, positions and values -------------------------------------------------


async def test_each_call_is_one_transaction_with_one_recorded_at(
    store: InMemoryEventStore,
) -> None:
    results = await store.append_multi(
        [
            StreamAppend("z", [NewEvent("Z", {})]),
            StreamAppend("a", [NewEvent("A", {}), NewEvent("A", {})]),
        ]
    )
    after = await store.append("a", [NewEvent("A", {})])

    events = await store.read_all()
    assert [e.stream for e in events] == ["a", "a", "z", "a"]  # written in stream-name order
    assert [e.position.seq for e in events] == [1, 2, 3, 4]
    assert {e.position.tx for e in events[:3]} == {results[0].positions[0].tx}
    assert after.positions[0].tx > results[0].positions[0].tx
    assert len({e.recorded_at for e in events[:3]}) == 1
    assert events[0].recorded_at.tzinfo is UTC
    continues = [await store.transaction_may_continue(e.position) for e in events]
    assert continues == [True, True, False, False]


async def test_reads_hand_out_json_values_in_fresh_dicts(store: InMemoryEventStore) -> None:
    data = {"pair": (1, 2), "id": uuid.UUID(int=1), "at": datetime(2026, 1, 2, tzinfo=UTC)}
    await store.append("s", [NewEvent("X", data, {"k": "v"})])

    first = (await store.read_stream("s"))[0]
    first.data["pair"].append(3)
    first.metadata.clear()
    again = (await store.read_stream("s"))[0]

    assert again.data == {
        "pair": [1, 2],
        "id": "00000000-0000-0000-0000-000000000001",
        "at": "2026-01-02T00:00:00+00:00",
    }
    assert again.metadata == {"k": "v"}


@pytest.mark.parametrize(
    ("stream", "event", "error"),
    [
        ("", NewEvent("X", {}), ValueError),
        ("s\x00", NewEvent("X", {}), ValueError),
        ("s", NewEvent("X\x00", {}), ValueError),
        ("s\ud800", NewEvent("X", {}), ValueError),
        ("s", NewEvent("X", {"set": {1}}), TypeError),
        ("s", NewEvent("X", {1: "int key"}), TypeError),  # type: ignore[dict-item]
        ("s", NewEvent("X", {"big": 2**64}), TypeError),
    ],
)
async def test_what_postgresql_could_not_store_is_refused_at_the_call(
    store: InMemoryEventStore, stream: str, event: NewEvent, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await store.append(stream, [event])
    assert await store.head_position() is None


@pytest.mark.parametrize("expectation", [-1, True, "3", 1.0])
async def test_bad_expectations_are_refused(store: InMemoryEventStore, expectation: object) -> None:
    with pytest.raises(ValueError):
        await store.append("s", [NewEvent("X", {})], expectation)  # type: ignore[arg-type]


# --- subscriptions and closing ----------------------------------------------------------


async def _next(subscription: AsyncIterator[RecordedEvent]) -> RecordedEvent:
    return await anext(subscription)


async def test_a_waiting_subscriber_is_woken_by_the_append(store: InMemoryEventStore) -> None:
    subscription = store.subscribe_all()
    waiting = asyncio.create_task(_next(subscription))
    await asyncio.sleep(0)  # let it reach its wait: the log is empty
    assert not waiting.done()

    written = await store.append("s", [NewEvent("X", {})])

    delivered = await asyncio.wait_for(waiting, 5)
    assert delivered.position == written.positions[0]
    await subscription.aclose()  # type: ignore[attr-defined]


async def test_closing_ends_waiting_subscriptions_and_refuses_calls(
    store: InMemoryEventStore,
) -> None:
    await store.append("s", [NewEvent("X", {})])
    everything = store.subscribe_all()
    one_stream = store.subscribe_stream("s")
    assert (await anext(everything)).stream == "s"
    assert (await anext(one_stream)).stream == "s"
    waiting = [asyncio.create_task(_next(s)) for s in (everything, one_stream)]
    await asyncio.sleep(0)

    await store.close()

    for task in waiting:
        with pytest.raises(EventStoreUnavailable):
            await asyncio.wait_for(task, 5)
    for call in (
        store.append("s", [NewEvent("X", {})]),
        store.append_multi([StreamAppend("s", [NewEvent("X", {})])]),
        store.read_stream("s"),
        store.read_all(),
        store.head_position(),
    ):
        with pytest.raises(EventStoreUnavailable):
            await call
