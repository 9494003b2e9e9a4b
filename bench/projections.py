"""Read-side figures: rebuild throughput and write-to-view latency.

    python -m bench.projections [inputs]      # default 20000 inputs

Works in a database of its own (created and dropped) on DATABASE_URL / REDIS_URL, or on
embedded servers when they are unset. A seeded workload (limit orders near the mid, market
orders, cancels) runs through a real MatchingEngine; requests and results are appended the
way the service writes them, 200 inputs per atomic append. Then:

1. rebuild: both views from an empty state to the head (events/s);
2. live: one input at a time through running builders, the time from the append's return
   to `progress.wait_for(position)` (the views, PostgreSQL and Redis, show it): p50/p99.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

from domain.codec import command_from_dict
from domain.instruments import Instrument
from projections.rebuild import rebuild
from projections.redis_views import drop_redis_views
from projections.runner import ProjectionRunner
from server.engine_inputs import logged_results, new_engine
from server.eventstore import open_event_store
from server.eventstore.port import EventStore, LogPosition, NewEvent, StreamAppend
from server.log_contract import layout as streams
from server.log_contract.results import ResultEncoder
from server.observability.logging import configure_logging

INSTRUMENT = Instrument("BTC-USD", Decimal("0.01"), Decimal("0.0001"))
T0 = datetime(2026, 1, 1, tzinfo=UTC)
_REQUEST_TYPES = {
    "place": streams.ORDER_PLACE_REQUESTED,
    "cancel": streams.ORDER_CANCEL_REQUESTED,
}


def workload(seed: int, count: int) -> list[dict[str, Any]]:
    """70% limit orders near the mid, 10% market orders, 20% cancels of earlier orders."""
    rng = random.Random(seed)
    commands: list[dict[str, Any]] = []
    placed: list[str] = []
    for n in range(count):
        roll = rng.random()
        side = rng.choice(["BUY", "SELL"])
        if roll < 0.2 and placed:
            commands.append({"op": "cancel", "order_id": placed.pop(rng.randrange(len(placed)))})
            continue
        order_id = f"b{n}"
        command: dict[str, Any] = {
            "op": "place",
            "order_id": order_id,
            "user_id": f"u{rng.randint(1, 50)}",
            "instrument": INSTRUMENT.symbol,
            "side": side,
            "quantity": f"{rng.randint(1, 50) / 10:.1f}",
            "time_in_force": "GTC",
        }
        if roll < 0.3:
            command["type"] = "MARKET"
            command["time_in_force"] = "IOC"
        else:
            offset = rng.randint(0, 20) * (1 if side == "SELL" else -1)
            command["type"] = "LIMIT"
            command["price"] = f"{1000 + offset * 0.5 + (0.5 if side == 'SELL' else -0.5):.2f}"
            placed.append(order_id)
        commands.append(command)
    return commands


class LogWriter:
    """Requests, then the engine's results, appended the way the service writes them."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.instruments = {INSTRUMENT.symbol: INSTRUMENT}
        # The service's engine (book deltas on) and its way of writing results.
        self.engine = new_engine(self.instruments)
        self.results = ResultEncoder(self.instruments)
        self.now = T0

    async def write(self, commands: list[dict[str, Any]]) -> LogPosition:
        """Append the requests in one transaction and the results in the next."""
        requests: dict[str, list[NewEvent]] = {}
        results: dict[str, list[NewEvent]] = {}
        for command in commands:
            self.now += timedelta(microseconds=100)
            data = {**command, "requested_at": streams.format_time(self.now)}
            if command["op"] == "place":
                data["client_order_id"] = ""
            request = NewEvent(_REQUEST_TYPES[command["op"]], data)
            requests.setdefault(streams.order_stream(command["order_id"]), []).append(request)
            metadata = {streams.CAUSATION_ID: str(request.event_id)}
            parsed = command_from_dict(command, self.instruments)
            for stream, event_type, data, _ in logged_results(
                self.engine.handle(parsed), self.results
            ):
                results.setdefault(stream, []).append(NewEvent(event_type, data, metadata))
        last: LogPosition | None = None
        for appends in (requests, results):
            if appends:
                written = await self.store.append_multi(
                    [StreamAppend(stream, events) for stream, events in appends.items()]
                )
                last = max(p for r in written for p in r.positions)
        assert last is not None
        return last


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def run(inputs: int) -> None:
    from server.embedded import resolve_service_urls

    urls = resolve_service_urls()
    name = f"bench_projections_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(urls.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = _with_database(urls.database_url, name)
    prefix = f"bench-projections:{name}:"
    store = await open_event_store(url)
    pool = await asyncpg.create_pool(url, min_size=2, max_size=8)
    redis = aioredis.from_url(urls.redis_url)
    try:
        writer = LogWriter(store)
        commands = workload(1, inputs)
        started = time.perf_counter()
        for start in range(0, len(commands), 200):
            await writer.write(commands[start : start + 200])
        written_s = time.perf_counter() - started
        head = await store.head_position()
        events = len(await store.read_all(None, limit=10_000_000))
        print(f"log: {inputs} inputs, {events} events written in {written_s:.1f} s ({head})")

        report = await rebuild(store, pool, redis, key_prefix=prefix)
        print(
            f"rebuild (PostgreSQL + Redis views, concurrently): {report.events} events in "
            f"{report.seconds:.2f} s = {report.events / report.seconds:,.0f} events/s"
        )

        runner = ProjectionRunner(store, pool, redis, key_prefix=prefix)
        await runner.start()
        try:
            assert await runner.catch_up(60)
            latencies: list[float] = []
            live = workload(2, 500)
            for command in live:
                command["order_id"] = "l" + command["order_id"]
            for command in live:
                if command["op"] == "cancel":
                    continue
                position = await writer.write([command])
                appended = time.perf_counter()
                assert await runner.progress.wait_for(position, 10)
                latencies.append(time.perf_counter() - appended)
        finally:
            await runner.stop()
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        print(
            f"write-to-view (append returned -> both views committed), {len(latencies)} "
            f"single-input appends: p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
    finally:
        await drop_redis_views(redis, prefix)
        await redis.aclose()
        await pool.close()
        await store.close()
        admin = await asyncpg.connect(urls.database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main(argv: list[str] | None = None) -> None:
    # The builders log each batch at debug level: thousands of lines between the figures.
    configure_logging("WARNING")
    args = sys.argv[1:] if argv is None else argv
    asyncio.run(run(int(args[0]) if args else 20_000))


if __name__ == "__main__":
    main()
