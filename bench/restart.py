"""Engine runner restart figures against log length: snapshots keep a restart flat.

    python -m bench restart                        # logs of 100,000 and 1,000,000 inputs (~4 min)
    python -m bench.restart --inputs 1000000       # any lengths; --snapshot-every, --tail

For each length, in a database of its own (created and dropped) on DATABASE_URL, or on the
embedded server when it is unset: a seeded steady workload (limit orders near the mid,
some crossing, and cancels of the oldest orders, so that at most `--resting` orders rest:
an exchange whose book does not grow without end) is appended as order requests, 1000 per
atomic append; one runner with the service's defaults (a snapshot every `--snapshot-every`
inputs, `ENGINE_CLOSED_ORDER_MEMORY` closed ids remembered) works through all of them and
stops; `--tail` more requests arrive while no runner runs. Then a new runner starts, and
the figures are:

- state loaded: the progress stream's last event, the latest snapshot read and restored;
- caught up: from its start until it has processed the last request (the tail included);
  both the median of `RESTARTS` restarts, each after another tail;
- for contrast, what a restart with no snapshot would re-run: every input of the log read
  and handled by a fresh engine (no writes).

Figures only, no pass/fail. A restart costs what the snapshot holds (resting orders and
remembered closed ids, printed beside it) plus the inputs after it, not the log's length:
it grows until the closed-id memory is full, then stays flat as the log grows.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from domain.errors import InvalidField
from server.engine_inputs import InputTranslator, new_engine
from server.engine_runner import INPUT_FILTER, EngineRunner
from server.eventstore import open_event_store
from server.eventstore.port import EventStore, LogPosition, NewEvent, StreamAppend
from server.instrument_config import load_instruments
from server.log_contract import layout as streams
from server.observability.logging import configure_logging
from server.settings import DEFAULT_INSTRUMENTS_FILE, Settings

INSTRUMENTS = load_instruments(DEFAULT_INSTRUMENTS_FILE)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
APPEND_SIZE = 1000
BATCH_MAX = 1000
PROCESS_BOUND_S = 3600.0
RESTARTS = 3
_REQUEST_TYPES = {"place": streams.ORDER_PLACE_REQUESTED, "cancel": streams.ORDER_CANCEL_REQUESTED}
SERVICE_DEFAULTS = Settings()


def steady_workload(seed: int, count: int, resting_max: int) -> list[dict[str, Any]]:
    """Limit orders near the mid (about one in five crosses) and cancels: 30% of the inputs
    cancel the oldest open order, and every input does once `resting_max` are open."""
    rng = random.Random(seed)
    open_orders: deque[tuple[str, str]] = deque()  # (order id, its user)
    commands: list[dict[str, Any]] = []
    for n in range(count):
        if open_orders and (len(open_orders) >= resting_max or rng.random() < 0.3):
            order_id, user_id = open_orders.popleft()
            commands.append({"op": "cancel", "order_id": order_id, "user_id": user_id})
            continue
        side = rng.choice(["BUY", "SELL"])
        offset = rng.randint(-4, 20) * (1 if side == "SELL" else -1)
        order_id, user_id = f"o{n}", f"u{rng.randint(1, 50)}"
        commands.append(
            {
                "op": "place",
                "order_id": order_id,
                "user_id": user_id,
                "instrument": "BTC-USD",
                "side": side,
                "type": "LIMIT",
                "price": f"{1000 + offset * 0.5:.2f}",
                "quantity": f"{rng.randint(1, 50) / 10:.1f}",
                "time_in_force": "GTC",
            }
        )
        open_orders.append((order_id, user_id))
    return commands


class RequestWriter:
    """Order requests as the command handlers write them, many per atomic append."""

    def __init__(self, store: EventStore, prefix: str) -> None:
        self._store = store
        self._prefix = prefix  # keeps the tail's order ids apart from the first part's
        self._now = T0

    async def write(self, commands: list[dict[str, Any]]) -> LogPosition:
        last: LogPosition | None = None
        for start in range(0, len(commands), APPEND_SIZE):
            by_stream: dict[str, list[NewEvent]] = {}
            for command in commands[start : start + APPEND_SIZE]:
                self._now += timedelta(microseconds=100)
                data = {
                    **command,
                    "order_id": self._prefix + command["order_id"],
                    "requested_at": streams.format_time(self._now),
                }
                if command["op"] == "place":
                    data["client_order_id"] = ""
                stream = streams.order_stream(data["order_id"])
                by_stream.setdefault(stream, []).append(
                    NewEvent(_REQUEST_TYPES[command["op"]], data)
                )
            written = await self._store.append_multi(
                [StreamAppend(stream, events) for stream, events in by_stream.items()]
            )
            last = max(position for result in written for position in result.positions)
        assert last is not None
        return last


def new_runner(store: EventStore, snapshot_every: int) -> EngineRunner:
    return EngineRunner(
        store,
        INSTRUMENTS,
        batch_max=BATCH_MAX,
        snapshot_every=snapshot_every,
        closed_order_memory=SERVICE_DEFAULTS.closed_order_memory,
    )


def snapshot_size(runner: EngineRunner) -> str:
    """What the restored engine holds: resting orders, closed ids, its snapshot's bytes."""
    state = runner.engine.snapshot()
    resting = sum(len(book["bids"]) + len(book["asks"]) for book in state["books"])
    return (
        f"{resting:,} resting orders, {len(state['closed']):,} closed ids, "
        f"{len(orjson.dumps(state)) / 1e6:.1f} MB"
    )


async def process_all(store: EventStore, last: LogPosition, snapshot_every: int) -> float:
    """One runner from where the log's progress stands to `last`; its wall time."""
    runner = new_runner(store, snapshot_every)
    started = time.perf_counter()
    runner.start()
    try:
        await asyncio.wait_for(runner.wait_processed(last), PROCESS_BOUND_S)
    finally:
        await runner.stop()
    return time.perf_counter() - started


async def replay_without_snapshot(store: EventStore) -> tuple[int, float]:
    """Read every input of the log and handle it in a fresh engine: (inputs, seconds)."""
    started = time.perf_counter()
    engine = new_engine(INSTRUMENTS)
    translator = InputTranslator(INSTRUMENTS)
    inputs = 0
    after: LogPosition | None = None
    while True:
        page = await store.read_all(after, INPUT_FILTER, limit=10_000)
        if not page:
            break
        for event in page:
            inputs += 1
            try:
                commands = translator.commands_for(event.type, event.data, engine.now)
            except InvalidField:
                continue
            for command in commands:
                engine.handle(command)
        after = page[-1].position
    return inputs, time.perf_counter() - started


async def measure(
    admin_url: str, inputs: int, snapshot_every: int, tail: int, resting: int
) -> None:
    name = f"bench_restart_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    store = await open_event_store(urlunsplit(urlsplit(admin_url)._replace(path="/" + name)))
    try:
        started = time.perf_counter()
        await RequestWriter(store, "a").write(steady_workload(1, inputs, resting))
        written_s = time.perf_counter() - started
        last = await store.head_position()
        assert last is not None
        first_pass_s = await process_all(store, last, snapshot_every)
        print(
            f"log of {inputs:,} inputs (written in {written_s:.1f} s, "
            f"first pass {first_pass_s:.1f} s)",
            flush=True,
        )
        loaded: list[float] = []
        caught_up: list[float] = []
        for restart in range(RESTARTS):
            tail_last = await RequestWriter(store, f"t{restart}-").write(
                steady_workload(2 + restart, tail, resting)
            )
            loader = new_runner(store, snapshot_every)
            started = time.perf_counter()
            await loader.load_state()
            loaded.append(time.perf_counter() - started)
            caught_up.append(await process_all(store, tail_last, snapshot_every))
        snapshot_inputs = loader.progress.inputs_total - loader.inputs_since_snapshot
        replayed, replay_s = await replay_without_snapshot(store)
        print(
            f"  restart, median of {RESTARTS} (each after {tail:,} more requests while stopped):"
            f" state loaded in {statistics.median(loaded):.3f} s, caught up in"
            f" {statistics.median(caught_up):.2f} s ({min(caught_up):.2f}-{max(caught_up):.2f});"
            f" last snapshot at input {snapshot_inputs:,} ({snapshot_size(loader)}),"
            f" {loader.progress.inputs_total - snapshot_inputs:,} inputs after it\n"
            f"  without a snapshot a restart would re-run {replayed:,} inputs: {replay_s:.2f} s",
            flush=True,
        )
    finally:
        await store.close()
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def run(lengths: list[int], snapshot_every: int, tail: int, resting: int) -> None:
    from server.embedded import resolve_service_urls

    admin_url = resolve_service_urls().database_url
    print(
        f"engine runner restart, snapshot every {snapshot_every:,} inputs, "
        f"batches of {BATCH_MAX:,}, at most {resting:,} resting orders, "
        f"{SERVICE_DEFAULTS.closed_order_memory:,} closed ids remembered:",
        flush=True,
    )
    for inputs in lengths:
        await measure(admin_url, inputs, snapshot_every, tail, resting)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.restart", description=__doc__)
    parser.add_argument("--inputs", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--snapshot-every", type=int, default=10_000)
    parser.add_argument("--tail", type=int, default=5_000, help="requests written while stopped")
    parser.add_argument("--resting", type=int, default=2_000, help="most orders open at once")
    args = parser.parse_args(argv)
    configure_logging("WARNING")  # the runner logs every batch at debug level
    asyncio.run(run(args.inputs, args.snapshot_every, args.tail, args.resting))


if __name__ == "__main__":
    main()
