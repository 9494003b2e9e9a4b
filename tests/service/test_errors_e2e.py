"""Every refusal maps to its status, with field violations, and appends nothing."""

from __future__ import annotations

import base64

import grpc
import pytest
from service_harness import Exchange
from service_helpers import (
    BTC,
    BUY,
    SELL,
    field_violations,
    limit,
    market,
    place,
    place_settled,
)

from clients.generated.exchange.v1 import order_command_service_pb2 as cmd
from clients.generated.exchange.v1 import order_query_service_pb2 as query
from clients.generated.exchange.v1 import types_pb2 as types


async def _log_head(exchange: Exchange) -> object:
    store = exchange.app.event_store
    assert store is not None
    return await store.head_position()


@pytest.mark.parametrize(
    ("request_", "violation"),
    [
        (limit("alice", BUY, "100.001", "1.0"), ("price", "OFF_TICK_GRID")),
        (limit("alice", BUY, "100.00", "0.00001"), ("quantity", "OFF_LOT_GRID")),
        (limit("alice", BUY, "100.00", "-1"), ("quantity", "NOT_POSITIVE")),
        (limit("alice", BUY, "abc", "1"), ("price", "MALFORMED")),
        (
            limit("alice", BUY, "100.00", "1", instrument="DOGE-USD"),
            ("instrument", "UNKNOWN_INSTRUMENT"),
        ),
        # An empty user_id is the key's account now (issue 13); a malformed one is refused.
        (limit("a\x00b", BUY, "100.00", "1"), ("user_id", "MALFORMED")),
        (limit("alice", types.SIDE_UNSPECIFIED, "100.00", "1"), ("side", "REQUIRED")),
        (limit("alice", BUY, "", "1"), ("price", "REQUIRED")),
        (limit("alice", BUY, "100.00", ""), ("quantity", "REQUIRED")),
        (market("alice", BUY, "1", price="100.00"), ("price", "NOT_ALLOWED")),
        (
            limit("alice", BUY, "100.00", "1", time_in_force=types.TIME_IN_FORCE_GTD),
            ("expire_time", "REQUIRED"),
        ),
        (
            cmd.PlaceOrderRequest(
                user_id="alice",
                instrument=BTC,
                side=BUY,
                type=types.ORDER_TYPE_STOP_LIMIT,
                price="100.00",
                quantity="1",
            ),
            ("stop_price", "REQUIRED"),
        ),
    ],
)
async def test_invalid_place_is_invalid_argument_with_the_field(
    exchange: Exchange, request_: cmd.PlaceOrderRequest, violation: tuple[str, str]
) -> None:
    head = await _log_head(exchange)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await place(exchange, request_)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(raised.value) == [violation]
    assert await _log_head(exchange) == head


async def test_cancel_of_unknown_order_is_not_found(exchange: Exchange) -> None:
    head = await _log_head(exchange)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await exchange.commands.CancelOrder(
            cmd.CancelOrderRequest(user_id="alice", order_id="nope")
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert await _log_head(exchange) == head


async def test_cancel_amend_and_get_of_another_users_order_are_not_found(
    exchange: Exchange,
) -> None:
    """Issue 13: another account's order is NOT_FOUND (was PERMISSION_DENIED), so order ids
    cannot be probed; mallory calls with her own key (the harness's)."""
    order_id = await place_settled(exchange, limit("alice", BUY, "99.00", "1.0"))
    head = await _log_head(exchange)
    with pytest.raises(grpc.aio.AioRpcError) as cancel:
        await exchange.commands.CancelOrder(
            cmd.CancelOrderRequest(user_id="mallory", order_id=order_id)
        )
    with pytest.raises(grpc.aio.AioRpcError) as amend:
        await exchange.commands.AmendOrder(
            cmd.AmendOrderRequest(user_id="mallory", order_id=order_id, quantity="2")
        )
    with pytest.raises(grpc.aio.AioRpcError) as get:
        await exchange.queries.GetOrder(query.GetOrderRequest(order_id=order_id, user_id="mallory"))
    assert cancel.value.code() == grpc.StatusCode.NOT_FOUND
    assert amend.value.code() == grpc.StatusCode.NOT_FOUND
    assert get.value.code() == grpc.StatusCode.NOT_FOUND
    assert await _log_head(exchange) == head


async def test_closing_a_closed_order_is_failed_precondition(exchange: Exchange) -> None:
    await place_settled(exchange, limit("alice", SELL, "100.00", "1.0"))
    filled = await place_settled(exchange, limit("bob", BUY, "100.00", "1.0"))
    head = await _log_head(exchange)
    with pytest.raises(grpc.aio.AioRpcError) as cancel:
        await exchange.commands.CancelOrder(cmd.CancelOrderRequest(user_id="bob", order_id=filled))
    with pytest.raises(grpc.aio.AioRpcError) as amend:
        await exchange.commands.AmendOrder(
            cmd.AmendOrderRequest(user_id="bob", order_id=filled, quantity="2")
        )
    assert cancel.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert amend.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await _log_head(exchange) == head


async def test_invalid_amend_is_invalid_argument(exchange: Exchange) -> None:
    order_id = await place_settled(exchange, limit("alice", BUY, "99.00", "1.0"))
    head = await _log_head(exchange)
    with pytest.raises(grpc.aio.AioRpcError) as off_grid:
        await exchange.commands.AmendOrder(
            cmd.AmendOrderRequest(user_id="alice", order_id=order_id, price="99.005")
        )
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await exchange.commands.AmendOrder(
            cmd.AmendOrderRequest(user_id="alice", order_id=order_id)
        )
    assert off_grid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(off_grid.value) == [("price", "OFF_TICK_GRID")]
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await _log_head(exchange) == head


async def test_query_errors(exchange: Exchange) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await exchange.queries.GetOrder(query.GetOrderRequest(order_id="nope"))
    with pytest.raises(grpc.aio.AioRpcError) as bad_position:
        await exchange.queries.GetOrder(query.GetOrderRequest(order_id="x", min_position="zz"))
    with pytest.raises(grpc.aio.AioRpcError) as bad_instrument:
        await exchange.queries.GetOrderBook(query.GetOrderBookRequest(instrument="DOGE-USD"))
    with pytest.raises(grpc.aio.AioRpcError) as bad_token:
        await exchange.queries.ListOrders(
            query.ListOrdersRequest(user_id="alice", page_token="not-a-token")
        )
    beyond_64_bits = base64.urlsafe_b64encode(b"trade:" + b"9" * 25).decode().rstrip("=")
    with pytest.raises(grpc.aio.AioRpcError) as huge_token:
        await exchange.queries.ListTrades(
            query.ListTradesRequest(instrument=BTC, page_token=beyond_64_bits)
        )
    assert field_violations(huge_token.value) == [("page_token", "MALFORMED")]
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert bad_position.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(bad_position.value) == [("min_position", "MALFORMED")]
    assert bad_instrument.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_token.value.code() == grpc.StatusCode.INVALID_ARGUMENT
