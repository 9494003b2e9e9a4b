"""A record no view builder can take: the builder stops at it, says so, and resumes once fixed.

The poison is written straight into the log with the event store port (the door refuses it
today): an `OrderPlaceRequested` whose `user_id` holds a NUL character, which PostgreSQL's
text type cannot store. Given healthy orders before and after it, the PostgreSQL builder
stops exactly at it (checkpoint just before, nothing later applied), reports it (failure
counter, stuck gauge naming position, type and reason, lag against the log's head growing
with the log), the Redis builder goes on alone; once the row is repaired in `es_events` the
PostgreSQL builder resumes by itself from where it stopped and its views equal a rebuild.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis
from projection_log import ScriptedLog
from prometheus_client import REGISTRY
from redis_urls import redis_url_with_db
from test_projection_views import dump_views, place

from projections.builder import EventNotApplied, consumer_of
from projections.postgres_views import BUILDER_NAME as POSTGRES
from projections.postgres_views import load_checkpoint
from projections.rebuild import rebuild
from projections.redis_views import BUILDER_NAME as REDIS
from projections.runner import ProjectionRunner
from server.eventstore import EventStore
from server.eventstore.port import NewEvent, RecordedEvent, StreamAppend
from server.log_contract import layout as streams
from server.observability.consumer_failures import ConsumerFailures, StuckEvent

WAIT_S = 30.0
REPO = Path(__file__).resolve().parents[2]
PG_CONSUMER = consumer_of(POSTGRES)
REDIS_CONSUMER = consumer_of(REDIS)
# Far beyond any test: the lag is measured when the test asks (LagWatcher.measure).
LAG_CHECK_S = 3600.0


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def poison_request(order_id: str, user_id: str = "a\x00b") -> tuple[str, NewEvent]:
    return streams.order_stream(order_id), NewEvent(
        streams.ORDER_PLACE_REQUESTED,
        {
            "order_id": order_id,
            "user_id": user_id,
            "client_order_id": "",
            "instrument": "BTC-USD",
            "side": "BUY",
            "type": "LIMIT",
            "price": "90.00",
            "quantity": "1.0",
            "time_in_force": "GTC",
            "requested_at": "2026-01-01T00:00:05Z",
        },
    )


class Changes:
    """Every change ConsumerFailures announces, and a way to wait for one."""

    def __init__(self, failures: ConsumerFailures) -> None:
        self.seen: list[tuple[str, StuckEvent | None]] = []
        self._changed = asyncio.Event()
        failures.add_listener(self._on_change)

    def _on_change(self, consumer: str, stuck: StuckEvent | None) -> None:
        self.seen.append((consumer, stuck))
        self._changed.set()

    async def wait_for(self, consumer: str, resumed: bool) -> StuckEvent | None:
        async def until() -> StuckEvent | None:
            while True:
                for seen_consumer, stuck in self.seen:
                    if seen_consumer == consumer and (stuck is None) == resumed:
                        return stuck
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(until(), WAIT_S)


@pytest.fixture
async def runner(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> AsyncIterator[ProjectionRunner]:
    projection_runner = ProjectionRunner(
        event_store,
        pg_pool,
        redis_client,
        key_prefix=key_prefix,
        retry_max_s=0.2,
        lag_check_s=LAG_CHECK_S,
    )
    yield projection_runner
    await projection_runner.stop()


async def repair(pool: asyncpg.Pool, event_id: UUID, data: dict[str, Any]) -> None:
    """What an operator would do: rewrite the bad record's data in the log."""
    updated = await pool.execute(
        "UPDATE es_events SET data = $1::json WHERE event_id = $2",
        orjson.dumps(data).decode(),
        event_id,
    )
    assert updated == "UPDATE 1"


async def recorded(store: EventStore, stream: str) -> RecordedEvent:
    (event,) = await store.read_stream(stream)
    return event


async def test_a_poison_event_stops_the_postgres_builder_there_until_it_is_repaired(
    event_store: EventStore,
    pg_pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    key_prefix: str,
    runner: ProjectionRunner,
) -> None:
    log = ScriptedLog(event_store, prefix="p1-")
    changes = Changes(runner.failures)
    failures_before = sample("exchange_consumer_failures_total", consumer=PG_CONSUMER) or 0.0
    await log.run([place("s1", "u1", "SELL", "100.00", "1.0")])
    before_poison = log.last_position
    poison_stream, poison = poison_request(log.order_id("x"))
    await event_store.append(poison_stream, [poison])
    await log.run(
        [place("b1", "u2", "BUY", "99.00", "1.0"), place("s2", "u3", "SELL", "101.00", "2.0")]
    )
    poison_event = await recorded(event_store, poison_stream)
    await runner.start()

    stuck = await changes.wait_for(PG_CONSUMER, resumed=False)
    assert stuck is not None
    assert (stuck.position, stuck.event_type, stuck.stream, stuck.reason) == (
        poison_event.position,
        streams.ORDER_PLACE_REQUESTED,
        poison_stream,
        "CharacterNotInRepertoireError",
    )
    # The Redis builder is not held up: it reaches the log's end alone.
    assert log.last_position is not None
    assert await runner.progress.wait_for(log.last_position, WAIT_S, names=[REDIS])
    assert runner.stuck_builders() == {POSTGRES: stuck}
    assert REDIS_CONSUMER not in runner.failures.stuck

    # Stopped at it: everything before it applied, nothing from it on, checkpoint before it.
    assert runner.progress.position(POSTGRES) == before_poison
    checkpoint = await load_checkpoint(pg_pool, POSTGRES)
    assert checkpoint is not None and checkpoint < poison_event.position
    orders = {row["order_id"] for row in await pg_pool.fetch("SELECT order_id FROM view_orders")}
    assert orders == {log.order_id("s1")}

    # Reported: failures counted, the stuck event named, health's input set.
    assert (sample("exchange_consumer_failures_total", consumer=PG_CONSUMER) or 0) > failures_before
    assert sample("exchange_consumer_stuck", consumer=PG_CONSUMER) == 1
    assert sample("exchange_consumer_stuck", consumer=REDIS_CONSUMER) == 0
    stuck_labels = {
        "consumer": PG_CONSUMER,
        "event_type": streams.ORDER_PLACE_REQUESTED,
        "position": poison_event.position.to_token(),
        "reason": "CharacterNotInRepertoireError",
    }
    assert sample("exchange_consumer_stuck_event", **stuck_labels) == 1

    # Lag against the log's head: the poison and everything after it, growing with the log.
    behind = [e for e in await event_store.read_all(before_poison, limit=10_000)]
    measured_from = datetime.now(UTC)
    await runner.lag.measure()
    assert sample("exchange_consumer_lag_events", consumer=PG_CONSUMER) == len(behind)
    seconds = sample("exchange_consumer_lag_seconds", consumer=PG_CONSUMER)
    assert seconds is not None
    assert seconds >= (measured_from - poison_event.recorded_at).total_seconds()
    assert sample("exchange_consumer_lag_events", consumer=REDIS_CONSUMER) == 0
    await log.run([place("b2", "u2", "BUY", "98.00", "1.0")])
    appended = len(await event_store.read_all(behind[-1].position, limit=10_000))
    assert appended >= 2  # the request and the engine's answer
    await runner.lag.measure()
    assert sample("exchange_consumer_lag_events", consumer=PG_CONSUMER) == len(behind) + appended
    later = sample("exchange_consumer_lag_seconds", consumer=PG_CONSUMER)
    assert later is not None and later >= seconds
    assert await runner.progress.wait_for(log.last_position, WAIT_S, names=[REDIS])
    assert runner.progress.position(POSTGRES) == before_poison

    # Repaired in the log: the builder resumes from the poison on, by itself.
    await repair(pg_pool, poison.event_id, {**poison.data, "user_id": "ab"})
    await changes.wait_for(PG_CONSUMER, resumed=True)
    assert await runner.progress.wait_for(log.last_position, WAIT_S)
    assert runner.stuck_builders() == {}
    assert sample("exchange_consumer_stuck", consumer=PG_CONSUMER) == 0
    assert sample("exchange_consumer_stuck_event", **stuck_labels) is None
    await runner.lag.measure()
    assert sample("exchange_consumer_lag_events", consumer=PG_CONSUMER) == 0
    assert sample("exchange_consumer_lag_seconds", consumer=PG_CONSUMER) == 0
    repaired = await runner.order_views.get_order(log.order_id("x"))
    assert repaired is not None and repaired.user_id == "ab"
    # Both builders run together again and keep up with new writes.
    await log.run([place("s3", "u3", "SELL", "102.00", "1.0")])
    assert await runner.progress.wait_for(log.last_position, WAIT_S)
    assert (await runner.order_views.get_order(log.order_id("s3"))) is not None

    # Applied from exactly where it stopped: the views are those a rebuild makes.
    await runner.stop()
    live = await dump_views(pg_pool, redis_client, key_prefix)
    await rebuild(event_store, pg_pool, redis_client, key_prefix=key_prefix)
    assert await dump_views(pg_pool, redis_client, key_prefix) == live


async def test_the_poison_event_is_named_inside_a_transaction_of_several(
    event_store: EventStore, pg_pool: asyncpg.Pool, runner: ProjectionRunner
) -> None:
    log = ScriptedLog(event_store, prefix="p2-")
    changes = Changes(runner.failures)
    await log.run([place("s1", "u1", "SELL", "100.00", "1.0")])
    before = log.last_position
    appends = [
        poison_request(log.order_id(name), user)
        for name, user in (("a", "alice"), ("b", "bob"), ("x", "eve\x00"), ("c", "carol"))
    ]
    await event_store.append_multi([StreamAppend(stream, [event]) for stream, event in appends])
    await runner.start()

    stuck = await changes.wait_for(PG_CONSUMER, resumed=False)
    assert stuck is not None
    x_event = await recorded(event_store, appends[2][0])
    assert (stuck.position, stuck.event_type) == (x_event.position, streams.ORDER_PLACE_REQUESTED)
    # The whole transaction stays unapplied (a view never holds part of one).
    assert runner.progress.position(POSTGRES) == before
    orders = {row["order_id"] for row in await pg_pool.fetch("SELECT order_id FROM view_orders")}
    assert orders == {log.order_id("s1")}


async def test_rebuild_stops_at_the_poison_event_and_says_where(
    event_store: EventStore, fresh_database_url: str, redis_url: str
) -> None:
    log = ScriptedLog(event_store, prefix="p3-")
    await log.run([place("s1", "u1", "SELL", "100.00", "1.0")])
    poison_stream, poison = poison_request(log.order_id("x"))
    await event_store.append(poison_stream, [poison])
    poison_event = await recorded(event_store, poison_stream)

    pool = await asyncpg.create_pool(fresh_database_url, min_size=1, max_size=2)
    client = aioredis.from_url(redis_url)
    prefix = "test-projections:rebuild-poison:"
    try:
        with pytest.raises(EventNotApplied) as raised:
            await rebuild(event_store, pool, client, key_prefix=prefix)
    finally:
        await client.aclose()
        await pool.close()
    assert raised.value.event.position == poison_event.position
    assert raised.value.builder == POSTGRES

    # The command line: a clear report on stderr, no traceback, exit status 1. Its Redis
    # keys (prefix `exchange:`) go to a database no other test uses.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.rebuild",
        cwd=REPO,
        env={
            **os.environ,
            "DATABASE_URL": fresh_database_url,
            "REDIS_URL": redis_url_with_db(redis_url, 13),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), WAIT_S)
    assert process.returncode == 1
    report = stderr.decode()
    assert "Traceback" not in report + stdout.decode()
    assert report.splitlines()[:6] == [
        f"rebuild stopped: {PG_CONSUMER} cannot apply an event",
        f"  position  {poison_event.position.to_token()}",
        f"  type      {streams.ORDER_PLACE_REQUESTED}",
        f"  stream    {poison_stream}",
        f"  event id  {poison_event.event_id}",
        report.splitlines()[5],
    ]
    assert report.splitlines()[5].startswith("  reason    CharacterNotInRepertoireError: ")
