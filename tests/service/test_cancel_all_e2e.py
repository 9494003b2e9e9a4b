"""End to end through gRPC: CancelAllOrders, a user's kill switch."""

from __future__ import annotations

from decimal import Decimal

import grpc
import pytest
from service_harness import Exchange
from service_helpers import (
    BTC,
    BUY,
    ETH,
    SELL,
    book,
    field_violations,
    get_order,
    levels,
    limit,
    place_settled,
)

from clients.generated.exchange.v1 import order_command_service_pb2 as cmd
from clients.generated.exchange.v1 import types_pb2 as types
from server.log_contract.layout import cancel_all_stream


async def _cancel_all(exchange: Exchange, user_id: str, instrument: str = "") -> None:
    response = await exchange.commands.CancelAllOrders(
        cmd.CancelAllOrdersRequest(user_id=user_id, instrument=instrument)
    )
    await exchange.settle(response.position)


async def test_cancels_the_users_orders_on_one_instrument_then_on_all(exchange: Exchange) -> None:
    bid = await place_settled(exchange, limit("alice", BUY, "99.00", "1.0"))
    ask = await place_settled(exchange, limit("alice", SELL, "101.00", "2.0"))
    stop_request = cmd.PlaceOrderRequest(
        user_id="alice",
        instrument=BTC,
        side=BUY,
        type=types.ORDER_TYPE_STOP_LIMIT,
        price="120.00",
        stop_price="110.00",
        quantity="0.5",
    )
    stop = await place_settled(exchange, stop_request)
    eth = await place_settled(exchange, limit("alice", BUY, "10.00", "1.000", instrument=ETH))
    others = await place_settled(exchange, limit("bob", BUY, "98.00", "3.0"))
    # Half of alice's ask trades first: its cancel reports what was left.
    await place_settled(exchange, limit("carol", BUY, "101.00", "0.5"))

    await _cancel_all(exchange, "alice", BTC)

    for order_id in (bid, ask, stop):
        order = await get_order(exchange, order_id)
        assert (order.status, order.reason) == (types.ORDER_STATUS_CANCELLED, "MASS_CANCEL")
    assert Decimal((await get_order(exchange, ask)).filled_quantity) == Decimal("0.5")
    assert (await get_order(exchange, eth)).status == types.ORDER_STATUS_OPEN
    assert (await get_order(exchange, others)).status == types.ORDER_STATUS_OPEN
    current = await book(exchange)
    assert levels(current.bids) == [(Decimal(98), Decimal(3), 1)]
    assert levels(current.asks) == []

    await _cancel_all(exchange, "alice")

    assert (await get_order(exchange, eth)).status == types.ORDER_STATUS_CANCELLED
    assert levels((await book(exchange, ETH)).bids) == []
    assert (await get_order(exchange, others)).status == types.ORDER_STATUS_OPEN


@pytest.mark.parametrize(
    ("user_id", "instrument", "violation"),
    [
        # An empty user_id is the key's account now (issue 13); a malformed one is refused.
        ("a b", "", ("user_id", "MALFORMED")),
        ("alice", "DOGE-USD", ("instrument", "UNKNOWN_INSTRUMENT")),
    ],
)
async def test_a_bad_request_is_refused_and_writes_nothing(
    exchange: Exchange, user_id: str, instrument: str, violation: tuple[str, str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await exchange.commands.CancelAllOrders(
            cmd.CancelAllOrdersRequest(user_id=user_id, instrument=instrument)
        )

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(raised.value) == [violation]
    assert exchange.app.event_store is not None
    assert await exchange.app.event_store.read_stream(cancel_all_stream(user_id)) == []
