"""The engine runner and an input it cannot process; its first snapshot across restarts;
a snapshot the log cannot hold.

A `ClockTicked` with no `now` is written straight into the log with the event store port
(nothing the service writes looks like that): the runner stops exactly at it (inputs
before it written, none after it), reports it (failure counter, stuck gauge with position,
type and reason, lag against the log's head growing with the log) and, once the record is
repaired in `es_events`, resumes by itself from there; the log then equals a full replay.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import orjson
import pytest
from engine_workload import input_events, progress_of, results_in_log, results_of_replay
from prometheus_client import REGISTRY

from domain.engine import MatchingEngine
from server.clock import clock_tick_event
from server.commands import CommandHandlers, PlaceOrderInput
from server.engine_runner import EngineRunner
from server.eventstore import open_event_store
from server.eventstore.port import EventStore, LogPosition, NewEvent, RecordedEvent
from server.instrument_config import load_instruments
from server.log_contract.layout import (
    CLOCK_STREAM,
    CLOCK_TICKED,
    engine_snapshot_stream,
    order_stream,
)
from server.observability.consumer_failures import StuckEvent
from server.settings import DEFAULT_INSTRUMENTS_FILE

INSTRUMENTS = load_instruments(DEFAULT_INSTRUMENTS_FILE)
WAIT_S = 30.0
CONSUMER = "engine"


@pytest.fixture
async def store(fresh_database_url: str) -> AsyncIterator[EventStore]:
    event_store = await open_event_store(fresh_database_url)
    yield event_store
    await event_store.close()


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def bid(user: str, price: str) -> PlaceOrderInput:
    return PlaceOrderInput(user, "BTC-USD", "BUY", "LIMIT", "0.1000", price=price)


async def wait_processed(runner: EngineRunner, position: LogPosition) -> None:
    await asyncio.wait_for(runner.wait_processed(position), WAIT_S)


async def test_the_first_snapshot_counts_inputs_from_the_log_start_across_restarts(
    store: EventStore,
) -> None:
    handlers = CommandHandlers(store, INSTRUMENTS)
    positions: list[LogPosition] = []

    async def one_life(orders: int) -> None:
        # One input per batch, so the snapshot lands on exactly the 10th input.
        runner = EngineRunner(store, INSTRUMENTS, batch_max=1, snapshot_every=10)
        runner.start()
        for _ in range(orders):
            placed = await handlers.place_order(bid(f"u{len(positions)}", "90.00"))
            positions.append(placed.position)
            await wait_processed(runner, placed.position)
        await runner.stop()

    await one_life(6)
    assert await store.read_stream(engine_snapshot_stream("main")) == []
    await one_life(6)  # 12 inputs since the log's start, fewer than 10 in this life

    snapshots = await store.read_stream(engine_snapshot_stream("main"))
    assert [(s.data["inputs_total"], s.data["last_input"]) for s in snapshots] == [
        (10, positions[9].to_token())
    ]
    progress = await progress_of(store)
    assert progress is not None
    assert (progress["inputs_total"], progress["snapshot_version"]) == (12, 0)


async def test_a_snapshot_the_log_cannot_hold_is_skipped_and_matching_goes_on(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers = CommandHandlers(store, INSTRUMENTS)
    runner = EngineRunner(store, INSTRUMENTS, batch_max=1, snapshot_every=2)
    real_snapshot = MatchingEngine.snapshot
    # A state beyond what the log's JSON holds (an integer past 64 bits), as a GTD order in
    # year 9999 once made it.
    monkeypatch.setattr(
        MatchingEngine, "snapshot", lambda engine: {**real_snapshot(engine), "now": 2**70}
    )
    failures_before = sample("exchange_engine_snapshot_failures_total") or 0.0
    runner.start()
    try:
        for user in ("u1", "u2"):
            placed = await handlers.place_order(bid(user, "90.00"))
            await wait_processed(runner, placed.position)
        assert sample("exchange_engine_snapshot_failures_total") == failures_before + 1
        assert await store.read_stream(engine_snapshot_stream("main")) == []
        monkeypatch.setattr(MatchingEngine, "snapshot", real_snapshot)
        positions = []
        for user in ("u3", "u4"):
            placed = await handlers.place_order(bid(user, "90.00"))
            positions.append(placed.position)
            await wait_processed(runner, placed.position)
    finally:
        await runner.stop()
    # Every input matched; the next snapshot came 2 inputs after the skipped one.
    snapshots = await store.read_stream(engine_snapshot_stream("main"))
    assert [(s.data["inputs_total"], s.data["last_input"]) for s in snapshots] == [
        (4, positions[-1].to_token())
    ]
    assert await results_in_log(store) == await results_of_replay(store, INSTRUMENTS)


async def test_an_input_the_engine_cannot_process_stops_it_there_until_repaired(
    store: EventStore, fresh_database_url: str
) -> None:
    handlers = CommandHandlers(store, INSTRUMENTS)
    before = await handlers.place_order(bid("alice", "90.00"))
    poison = NewEvent(CLOCK_TICKED, {"instant": "2026-01-01T00:00:00Z"})  # no `now`
    await store.append(CLOCK_STREAM, [poison])
    after = await handlers.place_order(bid("bob", "91.00"))
    (poison_event,) = [e for e in await store.read_stream(CLOCK_STREAM)]
    failures_before = sample("exchange_consumer_failures_total", consumer=CONSUMER) or 0.0

    # Batches of up to 8: the three inputs fail together first, then one by one.
    runner = EngineRunner(
        store,
        INSTRUMENTS,
        batch_max=8,
        snapshot_every=0,
        retry_delay_s=0.05,
        retry_max_s=0.2,
        lag_check_s=3600.0,  # measured when the test asks
    )
    changes: asyncio.Queue[StuckEvent | None] = asyncio.Queue()
    runner.failures.add_listener(lambda consumer, stuck: changes.put_nowait(stuck))
    runner.start()
    try:
        stuck = await asyncio.wait_for(changes.get(), WAIT_S)
        assert stuck is not None
        assert (stuck.position, stuck.event_type, stuck.stream, stuck.reason) == (
            poison_event.position,
            CLOCK_TICKED,
            CLOCK_STREAM,
            "UnreadableRecord",
        )
        # Stopped at it: the input before it written, the one after it not.
        await wait_processed(runner, before.position)
        progress = await progress_of(store)
        assert progress is not None
        assert (progress["last_input"], progress["inputs_total"]) == (
            before.position.to_token(),
            1,
        )
        assert [e.type for e in await store.read_stream(order_stream(after.order.order_id))] == [
            "OrderPlaceRequested"
        ]
        failures = sample("exchange_consumer_failures_total", consumer=CONSUMER) or 0.0
        assert failures >= failures_before + 2  # the batch of three, then the poison alone
        assert sample("exchange_consumer_stuck", consumer=CONSUMER) == 1
        stuck_labels = {
            "consumer": CONSUMER,
            "event_type": CLOCK_TICKED,
            "position": poison_event.position.to_token(),
            "reason": "UnreadableRecord",
        }
        assert sample("exchange_consumer_stuck_event", **stuck_labels) == 1

        # Lag against the log's head (inputs only): the poison and the order after it...
        measured_from = datetime.now(UTC)
        await runner.lag.measure()
        assert sample("exchange_consumer_lag_events", consumer=CONSUMER) == 2
        seconds = sample("exchange_consumer_lag_seconds", consumer=CONSUMER)
        assert seconds is not None
        assert seconds >= (measured_from - poison_event.recorded_at).total_seconds()
        # ... growing with the log while it stays stuck.
        later = await handlers.place_order(bid("carol", "92.00"))
        await store.append(CLOCK_STREAM, [clock_tick_event(datetime.now(UTC))])
        await runner.lag.measure()
        assert sample("exchange_consumer_lag_events", consumer=CONSUMER) == 4
        assert (sample("exchange_consumer_lag_seconds", consumer=CONSUMER) or 0) >= seconds
        assert runner.failures.stuck_at(CONSUMER) == stuck

        # Repaired in the log: it resumes from the poison on, by itself.
        await repair(fresh_database_url, poison_event, {"now": "2026-01-01T00:00:00Z"})
        assert await asyncio.wait_for(changes.get(), WAIT_S) is None
        await wait_processed(runner, later.position)
        assert runner.failures.stuck == {}
        assert sample("exchange_consumer_stuck", consumer=CONSUMER) == 0
        assert sample("exchange_consumer_stuck_event", **stuck_labels) is None
        await runner.lag.measure()
        assert sample("exchange_consumer_lag_events", consumer=CONSUMER) == 0
    finally:
        await runner.stop()

    # Nothing lost, nothing twice: the log is a full replay of its inputs.
    assert await results_in_log(store) == await results_of_replay(store, INSTRUMENTS)
    progress = await progress_of(store)
    assert progress is not None
    assert progress["inputs_total"] == len(await input_events(store)) == 5


async def repair(database_url: str, event: RecordedEvent, data: dict[str, str]) -> None:
    """What an operator would do: rewrite the bad record's data in the log."""
    connection = await asyncpg.connect(database_url)
    try:
        updated = await connection.execute(
            "UPDATE es_events SET data = $1::json WHERE event_id = $2",
            orjson.dumps(data).decode(),
            event.event_id,
        )
    finally:
        await connection.close()
    assert updated == "UPDATE 1"
