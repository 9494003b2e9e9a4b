"""Request builders and small readers shared by the service tests."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from service_harness import Exchange

from clients.generated.exchange.v1 import order_command_service_pb2 as cmd
from clients.generated.exchange.v1 import order_query_service_pb2 as query
from clients.generated.exchange.v1 import types_pb2 as types
from server.servicers.convert import timestamp_of

BTC = "BTC-USD"
ETH = "ETH-USD"
BUY = types.SIDE_BUY
SELL = types.SIDE_SELL


def limit(
    user_id: str,
    side: int,
    price: str,
    quantity: str,
    instrument: str = BTC,
    **fields: object,
) -> cmd.PlaceOrderRequest:
    return cmd.PlaceOrderRequest(
        user_id=user_id,
        instrument=instrument,
        side=side,
        type=types.ORDER_TYPE_LIMIT,
        price=price,
        quantity=quantity,
        **fields,  # type: ignore[arg-type]
    )


def market(
    user_id: str, side: int, quantity: str, instrument: str = BTC, **fields: object
) -> cmd.PlaceOrderRequest:
    return cmd.PlaceOrderRequest(
        user_id=user_id,
        instrument=instrument,
        side=side,
        type=types.ORDER_TYPE_MARKET,
        quantity=quantity,
        **fields,  # type: ignore[arg-type]
    )


def gtd(
    user_id: str, side: int, price: str, quantity: str, expire: datetime
) -> cmd.PlaceOrderRequest:
    request = limit(user_id, side, price, quantity, time_in_force=types.TIME_IN_FORCE_GTD)
    stamp = timestamp_of(expire)
    assert stamp is not None
    request.expire_time.CopyFrom(stamp)
    return request


async def place(exchange: Exchange, request: cmd.PlaceOrderRequest) -> cmd.PlaceOrderResponse:
    return await exchange.commands.PlaceOrder(request, timeout=30)


async def place_settled(exchange: Exchange, request: cmd.PlaceOrderRequest) -> str:
    """Place, wait for the engine and the views; the order id."""
    response = await place(exchange, request)
    await exchange.settle(response.position)
    return response.order.order_id


async def get_order(exchange: Exchange, order_id: str, min_position: str = "") -> types.Order:
    response = await exchange.queries.GetOrder(
        query.GetOrderRequest(order_id=order_id, min_position=min_position), timeout=30
    )
    return response.order


async def book(exchange: Exchange, instrument: str = BTC) -> query.GetOrderBookResponse:
    return await exchange.queries.GetOrderBook(
        query.GetOrderBookRequest(instrument=instrument), timeout=30
    )


def levels(side_levels: object) -> list[tuple[Decimal, Decimal, int]]:
    return [
        (Decimal(level.price), Decimal(level.quantity), level.order_count)
        for level in side_levels  # type: ignore[attr-defined]
    ]


def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """(field, reason) of the google.rpc.BadRequest in an error's rich status."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no rich status details"
    found: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found.extend((v.field, v.reason) for v in bad_request.field_violations)
    return found
