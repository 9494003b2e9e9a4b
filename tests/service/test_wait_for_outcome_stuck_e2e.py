"""`wait_for_outcome` when a consumer it waits for is stuck: UNAVAILABLE at once.

Given a running exchange whose engine runner (or a view builder) is stuck at a record it
cannot apply, written straight into the log, when a command asks to wait for its outcome,
then the answer is UNAVAILABLE at once (not DEADLINE_EXCEEDED at the deadline), naming the
stuck consumer and the event, and the request is written exactly once: once the record is
repaired, the same request retried is a duplicate of that order, answered by the engine.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from service_harness import Exchange, running_exchange, service_settings
from service_helpers import BUY, limit

from clients.generated.exchange.v1 import order_command_service_pb2 as cmd
from clients.generated.exchange.v1 import types_pb2 as types
from server.app import ExchangeApp
from server.eventstore.port import EventFilter, NewEvent, RecordedEvent
from server.log_contract import layout as streams
from server.observability.consumer_failures import StuckEvent

# Bounds the waits for the consumers' reports; the refusals themselves must come well
# within DEADLINE_S, the calls' own deadline.
WAIT_S = 30.0
DEADLINE_S = 20.0
VIEWS = "projection:postgres-views"


@pytest.fixture
async def exchange(fresh_database_url: str, service_redis_url: str) -> AsyncIterator[Exchange]:
    settings = service_settings(fresh_database_url, service_redis_url, consumer_retry_max_s=0.2)
    async with running_exchange(settings) as running:
        yield running


async def until_reported(app: ExchangeApp, consumer: str, stuck: bool) -> None:
    """Wait (through ConsumerFailures' listeners, no polling) until `consumer` is stuck, or
    no longer stuck."""
    changed = asyncio.Event()

    def on_change(name: str, event: StuckEvent | None) -> None:
        changed.set()

    app.failures.add_listener(on_change)

    async def until() -> None:
        while (app.failures.stuck_at(consumer) is not None) != stuck:
            changed.clear()
            await changed.wait()

    await asyncio.wait_for(until(), WAIT_S)


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call  # type: ignore[misc]
    return failure.value


async def place_requests(app: ExchangeApp, order_id: str) -> int:
    assert app.event_store is not None
    events = await app.event_store.read_stream(streams.order_stream(order_id))
    return [event.type for event in events].count(streams.ORDER_PLACE_REQUESTED)


async def repair(database_url: str, poison: RecordedEvent, data: str) -> None:
    """What an operator would do: rewrite the record no consumer could apply."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "UPDATE es_events SET data = $1::json WHERE event_id = $2", data, poison.event_id
        )
    finally:
        await connection.close()


async def test_a_stuck_engine_runner_makes_waiting_commands_unavailable_at_once(
    exchange: Exchange, fresh_database_url: str
) -> None:
    app = exchange.app
    assert app.event_store is not None
    resting = await exchange.commands.PlaceOrder(
        limit("alice", BUY, "90.00", "1.0", wait_for_outcome=True), timeout=WAIT_S
    )
    await app.event_store.append(streams.CLOCK_STREAM, [NewEvent(streams.CLOCK_TICKED, {})])
    (poison,) = await app.event_store.read_stream(streams.CLOCK_STREAM)
    await until_reported(app, "engine", stuck=True)
    request = limit("bob", BUY, "91.00", "1.0", client_order_id="bob-1", wait_for_outcome=True)

    place = await refused(exchange.commands.PlaceOrder(request, timeout=DEADLINE_S))
    cancel = await refused(
        exchange.commands.CancelOrder(
            cmd.CancelOrderRequest(
                user_id="alice", order_id=resting.order.order_id, wait_for_outcome=True
            ),
            timeout=DEADLINE_S,
        )
    )
    cancel_all = await refused(
        exchange.commands.CancelAllOrders(
            cmd.CancelAllOrdersRequest(user_id="alice", wait_for_outcome=True),
            timeout=DEADLINE_S,
        )
    )

    for refusal in (place, cancel, cancel_all):
        assert refusal.code() == grpc.StatusCode.UNAVAILABLE
        assert (refusal.details() or "").startswith(
            f"the engine is stopped: engine cannot apply ClockTicked at "
            f"{poison.position.to_token()}: UnreadableRecord: "
        )
    await repair(fresh_database_url, poison, '{"now": "2026-01-01T00:00:00Z"}')
    await until_reported(app, "engine", stuck=False)
    retried = await exchange.commands.PlaceOrder(request, timeout=WAIT_S)
    assert retried.duplicate
    assert retried.order.status == types.ORDER_STATUS_OPEN
    assert await place_requests(app, retried.order.order_id) == 1


async def test_a_wait_already_running_ends_unavailable_once_the_engine_gets_stuck(
    exchange: Exchange, fresh_database_url: str
) -> None:
    app = exchange.app
    runner = app.engine_runner
    assert app.event_store is not None and runner is not None
    await runner.stop()  # the engine reads nothing until it runs again
    await app.event_store.append(streams.CLOCK_STREAM, [NewEvent(streams.CLOCK_TICKED, {})])
    (poison,) = await app.event_store.read_stream(streams.CLOCK_STREAM)
    request = limit("bob", BUY, "91.00", "1.0", client_order_id="bob-1", wait_for_outcome=True)
    waiting = asyncio.ensure_future(exchange.commands.PlaceOrder(request, timeout=DEADLINE_S))
    placed = await _until_placed(app, "bob-1")

    runner.start()  # it stops at the poison record, before the request

    place = await refused(waiting)
    assert place.code() == grpc.StatusCode.UNAVAILABLE
    assert (place.details() or "").startswith(
        f"the engine is stopped: engine cannot apply ClockTicked at "
        f"{poison.position.to_token()}: UnreadableRecord: "
    )
    await repair(fresh_database_url, poison, '{"now": "2026-01-01T00:00:00Z"}')
    await until_reported(app, "engine", stuck=False)
    retried = await exchange.commands.PlaceOrder(request, timeout=WAIT_S)
    assert (retried.duplicate, retried.order.order_id) == (True, placed)
    assert retried.order.status == types.ORDER_STATUS_OPEN
    assert await place_requests(app, placed) == 1


async def _until_placed(app: ExchangeApp, client_order_id: str) -> str:
    """Wait (through a subscription, no polling) until an order with this client order id
    is written; its order id."""
    assert app.event_store is not None
    subscription = app.event_store.subscribe_all(
        None, EventFilter(event_types=(streams.ORDER_PLACE_REQUESTED,))
    )
    try:
        async with asyncio.timeout(WAIT_S):
            async for event in subscription:
                if event.data.get("client_order_id") == client_order_id:
                    return str(event.data["order_id"])
    finally:
        await subscription.aclose()  # type: ignore[attr-defined]
    raise AssertionError("the log ended")


async def test_a_stuck_view_builder_makes_a_waiting_place_unavailable_at_once(
    exchange: Exchange, fresh_database_url: str
) -> None:
    app = exchange.app
    assert app.event_store is not None
    poison_order_id = str(uuid.uuid4())
    stream = streams.order_stream(poison_order_id)
    # A user id PostgreSQL cannot store in a text column: the views' builder stops at it.
    poison_request = {
        "order_id": poison_order_id,
        "user_id": "a\x00b",
        "client_order_id": "",
        "instrument": "BTC-USD",
        "side": "BUY",
        "type": "LIMIT",
        "price": "90.00",
        "quantity": "1.0000",
        "time_in_force": "GTC",
        "requested_at": "2026-01-01T00:00:00.000000Z",
    }
    await app.event_store.append(stream, [NewEvent(streams.ORDER_PLACE_REQUESTED, poison_request)])
    (poison,) = await app.event_store.read_stream(stream)
    await until_reported(app, VIEWS, stuck=True)
    request = limit("bob", BUY, "91.00", "1.0", client_order_id="bob-1", wait_for_outcome=True)

    place = await refused(exchange.commands.PlaceOrder(request, timeout=DEADLINE_S))

    assert place.code() == grpc.StatusCode.UNAVAILABLE
    assert (place.details() or "").startswith(
        f"the views are stopped: {VIEWS} cannot apply OrderPlaceRequested at "
        f"{poison.position.to_token()}: CharacterNotInRepertoireError: "
    )
    # The engine's answer to the poison request names the user too: both are repaired, or
    # the builder would stop again at the answer.
    connection = await asyncpg.connect(fresh_database_url)
    try:
        repaired = await connection.execute(
            "UPDATE es_events SET data = replace(data::text, '\\u0000', '')::json"
            " WHERE strpos(data::text, '\\u0000') > 0"
        )
    finally:
        await connection.close()
    assert repaired == "UPDATE 2"
    await until_reported(app, VIEWS, stuck=False)
    retried = await exchange.commands.PlaceOrder(request, timeout=WAIT_S)
    assert retried.duplicate
    assert retried.order.status == types.ORDER_STATUS_OPEN
    assert await place_requests(app, retried.order.order_id) == 1
