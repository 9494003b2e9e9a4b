"""The engine runner: exactly-once across kill -9, fencing of a second runner, snapshots.

Each test's log is checked against a full replay of its inputs through a fresh
MatchingEngine: every stream must hold exactly the replay's events for it, in order, so a
lost input (missing results) or a duplicate (results twice) fails the comparison.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import asyncpg
import pytest
from engine_workload import (
    Workload,
    input_events,
    progress_of,
    results_in_log,
    results_of_replay,
    wait_until_processed,
)

from server.commands import CommandHandlers, PlaceOrderInput
from server.engine_inputs import InputTranslator, new_engine, replay_inputs
from server.engine_runner import EngineRunner, FencedOut
from server.eventstore import open_event_store
from server.eventstore.port import EventStore, LogPosition
from server.instrument_config import load_instruments, load_venue
from server.log_contract.layout import engine_snapshot_stream, engine_stream, order_stream
from server.money_commands import MoneyCommands
from server.settings import DEFAULT_INSTRUMENTS_FILE

INSTRUMENTS = load_instruments(DEFAULT_INSTRUMENTS_FILE)
VENUE = load_venue(DEFAULT_INSTRUMENTS_FILE)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def store(fresh_database_url: str) -> AsyncIterator[EventStore]:
    event_store = await open_event_store(fresh_database_url)
    yield event_store
    await event_store.close()


async def assert_log_equals_replay(
    store: EventStore, assets: Mapping[str, int] | None = None
) -> None:
    in_log = await results_in_log(store)
    replayed = await results_of_replay(store, INSTRUMENTS, assets=assets)
    assert in_log.keys() == replayed.keys()
    for stream, events in replayed.items():
        assert in_log[stream] == events, stream


class RunnerProcess:
    """`python -m server.engine_runner` as a child process (so it can be SIGKILLed)."""

    def __init__(self, database_url: str, redis_url: str, accounts: bool = False) -> None:
        self._env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "ENGINE_BATCH_MAX": "4",
            "SNAPSHOT_EVERY": "25",
            "LOG_LEVEL": "WARNING",
            # Matching alone unless asked (the replay it is compared with says which).
            "ACCOUNTS_ENABLED": "1" if accounts else "0",
        }
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.engine_runner",
            cwd=REPO,
            env=self._env,
            stdout=asyncio.subprocess.DEVNULL,
        )

    async def kill(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)
        await self.process.wait()

    async def kill_if_running(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()  # SIGKILL ends a stopped (SIGSTOP) process too
            await self.process.wait()


@pytest.fixture
async def runner(fresh_database_url: str, redis_url: str) -> AsyncIterator[RunnerProcess]:
    """A runner process that does not outlive its test, whatever the test's outcome (a
    failed test used to leave it retrying its dropped database, burning CPU)."""
    process = RunnerProcess(fresh_database_url, redis_url)
    yield process
    await process.kill_if_running()


_BACKEND_WAITING_ON_A_LOCK = """
SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
"""
_TAKE_THE_NEXT_VERSION = """
INSERT INTO es_events (event_id, stream, version, type, data, metadata)
SELECT gen_random_uuid(), $1, max(version) + 1, 'Blocker', '{}', '{}'
  FROM es_events WHERE stream = $1
"""
_BACKEND_ALIVE = "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)"


async def _until_stopped(pid: int) -> None:
    """Return once the process is stopped (a signal is delivered asynchronously)."""
    async with asyncio.timeout(30):
        # /proc/<pid>/stat: "pid (comm) state ...", state T when stopped by a signal.
        while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("accounts", [False, True], ids=["accounts-off", "accounts-on"])
async def test_kill_9_mid_stream_then_restart_loses_nothing_and_repeats_nothing(
    store: EventStore, fresh_database_url: str, redis_url: str, accounts: bool
) -> None:
    runner = RunnerProcess(fresh_database_url, redis_url, accounts=accounts)
    try:
        await _kill_9_mid_stream(store, fresh_database_url, runner, accounts)
    finally:
        await runner.kill_if_running()


async def _kill_9_mid_stream(
    store: EventStore, fresh_database_url: str, runner: RunnerProcess, accounts: bool
) -> None:
    workload = Workload(CommandHandlers(store, INSTRUMENTS), store, seed=7)
    await runner.start()
    if accounts:  # funds for part of the orders: holds, trades and refusals all occur
        money = MoneyCommands(store, INSTRUMENTS, VENUE.assets)
        for user in (f"u{n}" for n in range(1, 7)):
            await money.deposit(user, "BTC", "5", f"fund-btc-{user}")
            await money.deposit(user, "USD", "400", f"fund-usd-{user}")
    await workload.run(60)
    assert workload.last_position is not None
    handled_before = (await wait_until_processed(store, workload.last_position))["inputs_total"]
    # Kill it in the middle of an append. Paused (SIGSTOP), it cannot handle the next
    # input; a transaction of the test then writes (and holds) the next version of its
    # progress stream, which every append of the runner's batches writes; resumed, the
    # runner reads the input, matches it, and its append waits on that uncommitted row: it
    # is killed there. (The row is written after the input: a transaction open before it
    # would hold the read horizon below the input.)
    assert runner.process is not None
    runner.process.send_signal(signal.SIGSTOP)
    await _until_stopped(runner.process.pid)
    await workload.run(90)
    blocker = await asyncpg.connect(fresh_database_url)
    try:
        blocking = blocker.transaction()
        await blocking.start()
        await blocker.execute(_TAKE_THE_NEXT_VERSION, engine_stream("main"))
        runner.process.send_signal(signal.SIGCONT)
        async with asyncio.timeout(120):
            while (appending := await blocker.fetchval(_BACKEND_WAITING_ON_A_LOCK)) is None:
                await asyncio.sleep(0.01)
        await runner.kill(signal.SIGKILL)
        await blocking.rollback()
        # The dead runner's database session goes on with the append it had sent and
        # commits it, as a crash after sending an append can: the restart must take up
        # after that batch, not handle it again. Wait for that session to end.
        async with asyncio.timeout(120):
            while await blocker.fetchval(_BACKEND_ALIVE, appending):
                await asyncio.sleep(0.01)
    finally:
        await blocker.close()
    killed_at = (await progress_of(store) or {})["inputs_total"]
    total_inputs = len(await input_events(store))
    assert handled_before < killed_at < total_inputs

    await workload.run(100)  # more input while no runner runs
    await runner.start()
    await workload.run(50)  # and while the restarted one catches up
    assert workload.last_position is not None
    progress = await wait_until_processed(store, workload.last_position)
    await runner.kill(signal.SIGTERM)

    assert progress["inputs_total"] == len(await input_events(store))
    await assert_log_equals_replay(store, VENUE.assets if accounts else None)
    if accounts:  # the restarted engine's balances are a full replay's
        restarted = EngineRunner(store, INSTRUMENTS, assets=VENUE.assets)
        after = await restarted.load_state()
        inputs = await input_events(store)
        await restarted.process_batch([e for e in inputs if after is None or e.position > after])
        replay = new_engine(INSTRUMENTS, assets=VENUE.assets)
        replay_inputs(
            [(e.type, e.data) for e in inputs], INSTRUMENTS, assets=VENUE.assets, engine=replay
        )
        assert restarted.engine.balances() == replay.balances() != {}


async def test_a_second_runner_is_fenced_off(store: EventStore) -> None:
    workload = Workload(CommandHandlers(store, INSTRUMENTS), store, seed=11)
    await workload.run(40)
    first = EngineRunner(store, INSTRUMENTS, batch_max=8, snapshot_every=0, retry_delay_s=0.05)
    second = EngineRunner(store, INSTRUMENTS, batch_max=8, snapshot_every=0, retry_delay_s=0.05)
    await second.load_state()  # both start from the same (empty) progress
    first.start()
    assert workload.last_position is not None
    await wait_until_processed(store, workload.last_position)
    await first.stop()
    head = await store.head_position()

    # The second runner matched the same inputs in memory; its append must be refused.
    with pytest.raises(FencedOut):
        await second.process_batch(await input_events(store))
    assert await store.head_position() == head

    # Both running at once: each batch is written by exactly one of them.
    first.start()
    second.start()
    await workload.run(120)
    await wait_until_processed(store, workload.last_position)
    await first.stop()
    await second.stop()
    progress = await progress_of(store)
    assert progress is not None
    assert progress["inputs_total"] == len(await input_events(store))
    await assert_log_equals_replay(store)


async def test_restart_loads_the_snapshot_and_replays_only_the_tail(store: EventStore) -> None:
    workload = Workload(CommandHandlers(store, INSTRUMENTS), store, seed=3)
    runner = EngineRunner(store, INSTRUMENTS, batch_max=3, snapshot_every=10)
    runner.start()
    await workload.run(47, concurrency=1)
    assert workload.last_position is not None
    await wait_until_processed(store, workload.last_position)
    await runner.stop()
    snapshots = await store.read_stream(engine_snapshot_stream("main"))
    assert len(snapshots) >= 3
    # Refused steps append nothing, so the input count depends on timing and the latest
    # snapshot may cover the last input: one more input, written while no runner runs,
    # guarantees a tail to replay.
    await CommandHandlers(store, INSTRUMENTS).place_order(
        PlaceOrderInput("u1", "BTC-USD", "BUY", "LIMIT", "0.1", price="99.90")
    )

    restarted = EngineRunner(store, INSTRUMENTS, batch_max=3, snapshot_every=10)
    replay_from = await restarted.load_state()
    latest = snapshots[-1].data
    assert replay_from == LogPosition.parse(latest["last_input"])
    tail = [event for event in await input_events(store) if event.position > replay_from]
    assert 0 < len(tail) < 47 - 20  # only what came after the latest snapshot
    # Snapshot + tail gives the same engine as a full replay.
    for event in tail:
        translated = InputTranslator(INSTRUMENTS).commands_for(
            event.type, event.data, restarted.engine.now
        )
        for command in translated:
            restarted.engine.handle(command)
    reference = new_engine(INSTRUMENTS)
    translator = InputTranslator(INSTRUMENTS)
    for event in await input_events(store):
        for command in translator.commands_for(event.type, event.data, reference.now):
            reference.handle(command)
    assert restarted.engine.snapshot() == reference.snapshot()

    # And it carries on from there.
    second_life = EngineRunner(store, INSTRUMENTS, batch_max=3, snapshot_every=10)
    second_life.start()
    await workload.run(30, concurrency=1)
    await wait_until_processed(store, workload.last_position)
    await second_life.stop()
    await assert_log_equals_replay(store)


async def test_closed_order_memory_bounds_the_snapshots(store: EventStore) -> None:
    workload = Workload(CommandHandlers(store, INSTRUMENTS), store, seed=5)
    runner = EngineRunner(store, INSTRUMENTS, batch_max=4, snapshot_every=10, closed_order_memory=3)
    runner.start()
    await workload.run(60, concurrency=1)
    assert workload.last_position is not None
    await wait_until_processed(store, workload.last_position)
    await runner.stop()
    # The log is what a fresh engine with the same memory emits for the same inputs.
    in_log = await results_in_log(store)
    assert in_log == await results_of_replay(store, INSTRUMENTS, closed_order_memory=3)
    snapshots = await store.read_stream(engine_snapshot_stream("main"))
    latest = snapshots[-1].data["engine"]
    assert latest["closed_order_memory"] == 3
    # Forgotten at each clock step: what one input closed can come on top of the memory.
    assert 0 < len(latest["closed"]) <= 3 + 5
    assert len(latest["closed"]) < len(await input_events(store)) // 4


async def test_an_input_the_engine_cannot_read_is_rejected_not_a_poison_pill(
    store: EventStore,
) -> None:
    # Written while ETH-USD was configured; the runner now knows BTC-USD only.
    handlers = CommandHandlers(store, INSTRUMENTS)
    orphan = await handlers.place_order(
        PlaceOrderInput("alice", "ETH-USD", "BUY", "LIMIT", "1.000", price="3000.00")
    )
    normal = await handlers.place_order(
        PlaceOrderInput("bob", "BTC-USD", "BUY", "LIMIT", "1.0000", price="100.00")
    )
    btc_only = {"BTC-USD": INSTRUMENTS["BTC-USD"]}
    runner = EngineRunner(store, btc_only, snapshot_every=0)
    runner.start()
    await wait_until_processed(store, normal.position)
    await runner.stop()

    orphan_stream = await store.read_stream(order_stream(orphan.order.order_id))
    normal_stream = await store.read_stream(order_stream(normal.order.order_id))
    assert [(e.type, e.data.get("reason")) for e in orphan_stream[1:]] == [
        ("OrderRejected", "UNKNOWN_INSTRUMENT")
    ]
    assert [e.type for e in normal_stream[1:]] == ["OrderAccepted"]
