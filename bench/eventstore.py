"""Event store figures: append rates, catch-up read rate, append-to-delivery latency.

Runs against DATABASE_URL's server (an embedded PostgreSQL when unset), in a database it
creates for the run and drops afterwards:

    .venv/bin/python -m bench eventstore
    .venv/bin/python -c "import bench.eventstore as b; b.main(['--scale', '0.2'])"

Targets (issue #5): concurrent single-event appends > 50k events/s (group commit),
catch-up > 200k events/s, append-to-delivery p99 < 10 ms.

The store runs under the garbage-collector settings of the service process (server/app.py
configure_garbage_collector, start-up objects frozen), not the interpreter defaults:
with the defaults the collector alone took ~30% of a catch-up read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import psutil

from server.app import configure_garbage_collector
from server.eventstore import NO_STREAM, EventStore, NewEvent, open_event_store

# Issue #16: group-committed single-event appends reach this share of a raw 1000-row INSERT.
GROUP_COMMIT_TARGET = 0.6


def _order_event(index: int) -> NewEvent:
    """A ~190-byte event shaped like an order request."""
    return NewEvent(
        "OrderPlaceRequested",
        {
            "op": "place",
            "order_id": f"o-{index:09d}",
            "instrument": "BTC-USD",
            "side": "BUY",
            "type": "LIMIT",
            "price": "50123.50",
            "quantity": "0.125",
            "time_in_force": "GTC",
            "user_id": f"user-{index % 97}",
            "requested_at": "2026-01-02T03:04:05.678901Z",
        },
        {"correlation_id": f"c-{index}"},
    )


class _CpuMeter:
    """CPU time of this process and of the PostgreSQL backends serving the bench database:
    a cost per event that, unlike a rate, holds on a shared machine whatever else runs.
    (This process also builds the events; that is in its figure.)"""

    def __init__(self, database: str) -> None:
        self._database = database

    def seconds(self) -> tuple[float, float]:
        own = time.process_time()
        database = 0.0
        for process in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if self._database in " ".join(process.info["cmdline"] or ()):
                    times = process.cpu_times()
                    database += times.user + times.system
        return own, database


_meter: _CpuMeter | None = None


async def _timed(label: str, event_count: int, work: Callable[[], Awaitable[object]]) -> float:
    cpu_before = _meter.seconds() if _meter else (0.0, 0.0)
    started = time.perf_counter()
    await work()
    elapsed = time.perf_counter() - started
    cpu_after = _meter.seconds() if _meter else (0.0, 0.0)
    rate = event_count / elapsed
    python_us, postgres_us = (
        (after - before) / event_count * 1e6
        for before, after in zip(cpu_before, cpu_after, strict=True)
    )
    print(
        f"  {label:<44} {event_count:>8} events {elapsed:7.2f} s {rate:>10,.0f} events/s"
        f"  cpu/event: python {python_us:5.1f} us, postgres {postgres_us:5.1f} us"
    )
    return rate


async def _single_appends(store: EventStore, writers: int, per_writer: int, tag: str) -> None:
    async def writer(writer_index: int) -> None:
        for index in range(per_writer):
            number = writer_index * per_writer + index
            await store.append(f"order-{tag}-{number}", [_order_event(number)], NO_STREAM)

    await asyncio.gather(*(writer(index) for index in range(writers)))


async def _batch_appends(store: EventStore, batch_size: int, batches: int, tag: str) -> None:
    for batch_index in range(batches):
        batch = [_order_event(batch_index * batch_size + i) for i in range(batch_size)]
        await store.append(f"batch-{tag}-{batch_index}", batch, NO_STREAM)


async def _wait_until_visible(store: EventStore, last_stream: str) -> None:
    """Return once the last event written is below the read horizon. A transaction still
    running in this database holds the horizon back (before 2026-12-01 one in any database
    of the cluster did), and a catch-up timed meanwhile would stop at a short page and
    report a rate for events it never read."""
    last_position = (await store.read_stream(last_stream))[-1].position
    while (head := await store.head_position()) is None or head < last_position:
        await asyncio.sleep(0.01)


async def _catch_up(store: EventStore) -> int:
    count = 0
    after = None
    while True:
        page = await store.read_all(after, limit=5000)
        count += len(page)
        if len(page) < 5000:
            return count
        after = page[-1].position


async def _raw_fetch(url: str) -> int:
    """The same pages straight from asyncpg, undecoded: the ceiling for `_catch_up`."""
    connection = await asyncpg.connect(url)
    count, tx, position = 0, 0, 0
    try:
        while True:
            rows = await connection.fetch(
                "SELECT position, tx_id, event_id, stream, version, type, data, metadata,"
                " recorded_at FROM es_events WHERE (tx_id, position) > ($1::xid8, $2::bigint)"
                " ORDER BY tx_id, position LIMIT 5000",
                tx,
                position,
            )
            count += len(rows)
            if len(rows) < 5000:
                return count
            tx, position = rows[-1]["tx_id"], rows[-1]["position"]
    finally:
        await connection.close()


async def _subscription_catch_up(store: EventStore, expected: int) -> int:
    count = 0
    subscription = store.subscribe_all(None)
    async for _event in subscription:
        count += 1
        if count == expected:
            break
    await subscription.aclose()  # type: ignore[attr-defined]
    return count


async def _delivery_latency(store: EventStore, samples: int) -> list[float]:
    """Append one event at a time; time from the append call to its live delivery."""
    head = await store.head_position()
    subscription = store.subscribe_all(head)
    latencies: list[float] = []
    delivered: asyncio.Queue[float] = asyncio.Queue()

    async def consume() -> None:
        async for _event in subscription:
            delivered.put_nowait(time.perf_counter())

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.2)  # the subscriber is live
    for index in range(samples):
        sent = time.perf_counter()
        await store.append(f"latency-{index}", [_order_event(index)], NO_STREAM)
        received = await delivered.get()
        latencies.append(received - sent)
        await asyncio.sleep(0.001)
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    return latencies


async def _machine_baseline(url: str) -> float:
    """What this server does with no event store in the way, to read the figures against:
    one-row INSERT commits on one connection, 1000-row INSERT ... SELECT unnest, and the same
    rows into a copy of es_events (its indexes, none of the store's functions)."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "CREATE TABLE bench_baseline (id uuid PRIMARY KEY, data json NOT NULL)"
        )
        body = orjson.dumps(_order_event(0).data).decode()
        count = 300
        started = time.perf_counter()
        for _ in range(count):
            await connection.execute(
                "INSERT INTO bench_baseline VALUES ($1, $2::json)", uuid.uuid4(), body
            )
        commits = count / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(10):
            await connection.execute(
                "INSERT INTO bench_baseline SELECT unnest($1::uuid[]), unnest($2::text[])::json",
                [uuid.uuid4() for _ in range(1000)],
                [body] * 1000,
            )
        bulk = 10_000 / (time.perf_counter() - started)
        # The same rows into a copy of es_events, with the three indexes the port needs
        # (global order, stream and version, event id): what appends cost PostgreSQL before
        # any of the store's own work.
        await connection.execute("CREATE TABLE bench_events (LIKE es_events INCLUDING ALL)")
        started = time.perf_counter()
        for batch in range(10):
            await connection.execute(
                "INSERT INTO bench_events (event_id, stream, version, type, data, metadata)"
                " SELECT unnest($1::uuid[]), unnest($2::text[]), 0, 'OrderPlaceRequested',"
                " unnest($3::text[])::json, '{}'::json",
                [uuid.uuid4() for _ in range(1000)],
                [f"order-{batch}-{index}" for index in range(1000)],
                [body] * 1000,
            )
        indexed = 10_000 / (time.perf_counter() - started)
        print(
            f"  {'baseline: raw 1-row INSERT commits':<44} {commits:>35,.0f} rows/s\n"
            f"  {'baseline: raw 1000-row INSERT (unnest)':<44} {bulk:>35,.0f} rows/s\n"
            f"  {'baseline: the same into a copy of es_events':<44} {indexed:>35,.0f} rows/s"
        )
        return indexed
    finally:
        await connection.close()


def _use_service_gc_settings() -> None:
    """The collector as the service process runs it (server/app.py, and gc.freeze() once
    started in server/__main__.py), so the figures are the service's."""
    configure_garbage_collector()
    gc.freeze()


async def _run(admin_url: str, scale: float) -> None:
    def scaled(count: int) -> int:
        return max(1, int(count * scale))

    name = f"exchange_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(admin_url)._replace(path="/" + name))
    global _meter
    _meter = _CpuMeter(name)
    try:
        store = await open_event_store(url, max_pool_size=12)
        try:
            _use_service_gc_settings()
            print(f"  database: fresh {name} on {urlsplit(admin_url).netloc or 'unix socket'}")
            print(f"  gc: thresholds {gc.get_threshold()}, start-up objects frozen (the service's)")
            raw_insert = await _machine_baseline(url)
            total = 0
            count = scaled(3000)
            await _timed("single-event appends, 1 writer", count,
                         lambda: _single_appends(store, 1, count, "a"))  # fmt: skip
            total += count
            per = scaled(1500)
            await _timed("single-event appends, 16 writers", 16 * per,
                         lambda: _single_appends(store, 16, per, "b"))  # fmt: skip
            total += 16 * per
            per = scaled(200)
            grouped = await _timed("single-event appends, 256 writers", 256 * per,
                                   lambda: _single_appends(store, 256, per, "c"))  # fmt: skip
            total += 256 * per
            # Issue #16: group commit against the raw bulk INSERT of the same run.
            ratio = grouped / raw_insert
            print(
                f"  group-committed single-event appends (256 writers) = {ratio:.0%} of a raw "
                f"1000-row INSERT into a copy of es_events (target >= {GROUP_COMMIT_TARGET:.0%}: "
                f"{'MET' if ratio >= GROUP_COMMIT_TARGET else 'NOT MET'})"
            )
            batches = scaled(300)
            await _timed("batches of 100 events, 1 writer", 100 * batches,
                         lambda: _batch_appends(store, 100, batches, "d"))  # fmt: skip
            total += 100 * batches
            batches = scaled(100)
            await _timed("batches of 1000 events, 1 writer", 1000 * batches,
                         lambda: _batch_appends(store, 1000, batches, "e"))  # fmt: skip
            total += 1000 * batches
            await _wait_until_visible(store, f"batch-e-{batches - 1}")
            # The first read of freshly committed rows also sets their hint bits (PostgreSQL
            # checks each row's transaction once and marks the row); a restart or a rebuild
            # reads rows that were read (or vacuumed) before. Both figures, then.
            await _timed("catch-up read_all, first read of new rows", total,
                         lambda: _catch_up(store))  # fmt: skip
            await _timed("catch-up read_all, rows read before", total, lambda: _catch_up(store))
            await _timed("baseline: raw fetch, no decoding", total, lambda: _raw_fetch(url))
            await _timed("catch-up subscribe_all", total,
                         lambda: _subscription_catch_up(store, total))  # fmt: skip
            latencies = await _delivery_latency(store, scaled(1000))
            latencies.sort()
            p50 = statistics.median(latencies) * 1000
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
            print(
                f"  {'append-to-delivery, live subscription':<44} {len(latencies):>8} samples"
                f"  p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {latencies[-1] * 1000:.2f} ms"
            )
        finally:
            await store.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench.eventstore", description=__doc__)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every event count (default 1)"
    )
    arguments = parser.parse_args(argv)
    admin_url = os.environ.get("DATABASE_URL", "").strip()
    if not admin_url:
        from server.embedded import embedded_postgres_url

        admin_url = embedded_postgres_url()
    print(f"  started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, scale {arguments.scale}")
    try:
        import uvloop

        uvloop.run(_run(admin_url, arguments.scale))
    except ImportError:
        asyncio.run(_run(admin_url, arguments.scale))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
