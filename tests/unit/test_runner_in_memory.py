"""The engine runner on the in-memory log: requests in, the engine's results out, once.

Given place requests in the log, when the runner has consumed them, then each order's
stream holds exactly the engine's answers after its request, the trade is in the
instrument's trades stream, and the progress stream names the last input consumed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest

from domain.instruments import Instrument
from server.commands import CommandHandlers, PlaceOrderInput
from server.engine_runner import EngineRunner, FencedOut
from server.eventstore import EventStore
from server.log_contract.layout import engine_stream, order_stream, trades_stream

RunEngine = Callable[..., Awaitable[EngineRunner]]


def limit(
    user_id: str, side: str, price: str, quantity: str, client_order_id: str
) -> PlaceOrderInput:
    return PlaceOrderInput(
        user_id=user_id,
        instrument="BTC-USD",
        side=side,
        type="LIMIT",
        quantity=quantity,
        price=price,
        client_order_id=client_order_id,
    )


async def types_of(store: EventStore, stream: str) -> list[str]:
    return [event.type for event in await store.read_stream(stream)]


async def results_of(store: EventStore, stream: str) -> list[dict[str, Any]]:
    """The data of the engine's events in a stream (the requests left out). The engine
    writes each event's type in its data too."""
    results = [e for e in await store.read_stream(stream) if not e.type.endswith("Requested")]
    assert all(event.data["type"] == event.type for event in results)
    return [event.data for event in results]


async def test_a_crossing_buy_fills_against_the_resting_sell(
    store: EventStore, handlers: CommandHandlers, run_engine: RunEngine
) -> None:
    sell = await handlers.place_order(limit("alice", "SELL", "45000.00", "1.5", "s-1"))
    buy = await handlers.place_order(limit("bob", "BUY", "45010.00", "1", "b-1"))
    seller, buyer = sell.order.order_id, buy.order.order_id

    await run_engine(buy.position)

    assert await results_of(store, order_stream(seller)) == [
        {
            "type": "OrderAccepted",
            "order_id": seller,
            "user_id": "alice",
            "instrument": "BTC-USD",
            "side": "SELL",
            "order_type": "LIMIT",
            "price": "45000.00",
            "quantity": "1.5000",
            "time_in_force": "GTC",
            "post_only": False,
            "stp": "CANCEL_NEWEST",
            "expire_time": None,
            "max_slippage_bps": None,
            "stop_price": None,
            "accepted_at": "2026-01-01T00:00:00.000000Z",
        },
        {
            "type": "OrderPartiallyFilled",
            "order_id": seller,
            "instrument": "BTC-USD",
            "trade_id": "BTC-USD-1",
            "price": "45000.00",
            "quantity": "1.0000",
            "filled_quantity": "1.0000",
            "remaining_quantity": "0.5000",
            "executed_at": "2026-01-01T00:00:01.000000Z",
        },
    ]
    assert await types_of(store, order_stream(buyer)) == [
        "OrderPlaceRequested",
        "OrderAccepted",
        "OrderFilled",
    ]
    assert (await results_of(store, order_stream(buyer)))[1] == {
        "type": "OrderFilled",
        "order_id": buyer,
        "instrument": "BTC-USD",
        "trade_id": "BTC-USD-1",
        "price": "45000.00",  # the maker's price
        "quantity": "1.0000",
        "filled_quantity": "1.0000",
        "remaining_quantity": "0.0000",
        "executed_at": "2026-01-01T00:00:01.000000Z",
    }
    assert await results_of(store, trades_stream("BTC-USD")) == [
        {
            "type": "TradeExecuted",
            "trade_id": "BTC-USD-1",
            "instrument": "BTC-USD",
            "price": "45000.00",
            "quantity": "1.0000",
            "maker_order_id": seller,
            "taker_order_id": buyer,
            "taker_side": "BUY",
            "maker_user_id": "alice",
            "taker_user_id": "bob",
            "executed_at": "2026-01-01T00:00:01.000000Z",
        }
    ]
    # Each result names the request that caused it.
    buy_request = (await store.read_stream(order_stream(buyer)))[0]
    for result in (await store.read_stream(order_stream(buyer)))[1:]:
        assert result.metadata == {
            "causation_id": str(buy_request.event_id),
            "correlation_id": buyer,
        }
    progress = (await store.read_stream(engine_stream("main")))[-1].data
    assert (progress["last_input"], progress["inputs_total"]) == (buy.position.to_token(), 2)


async def test_a_restarted_runner_resumes_from_its_snapshot_and_repeats_nothing(
    store: EventStore, handlers: CommandHandlers, run_engine: RunEngine
) -> None:
    sell = await handlers.place_order(limit("alice", "SELL", "45000.00", "1.5", "s-1"))
    first = await run_engine(sell.position, snapshot_every=1)
    assert first.progress.snapshot_version == 0
    buy = await handlers.place_order(limit("bob", "BUY", "45010.00", "1", "b-1"))

    second = await run_engine(buy.position, snapshot_every=1)

    assert second.progress.inputs_total == 2
    assert await types_of(store, order_stream(sell.order.order_id)) == [
        "OrderPlaceRequested",
        "OrderAccepted",  # once: the second runner did not run the sell again
        "OrderPartiallyFilled",  # the restored book still held it
    ]
    assert len(await store.read_stream(trades_stream("BTC-USD"))) == 1


async def test_a_second_runner_is_fenced_off_and_writes_nothing(
    store: EventStore,
    handlers: CommandHandlers,
    run_engine: RunEngine,
    instruments: Mapping[str, Instrument],
) -> None:
    placed = await handlers.place_order(limit("alice", "SELL", "45000.00", "1.5", "s-1"))
    late = EngineRunner(store, instruments)
    await late.load_state()  # before the first runner wrote: it expects no progress yet
    await run_engine(placed.position)
    head = await store.head_position()
    request = (await store.read_stream(order_stream(placed.order.order_id)))[0]

    with pytest.raises(FencedOut):
        await late.process_batch([request])

    assert await store.head_position() == head
    assert len(await store.read_stream(engine_stream("main"))) == 1
