"""One order, read through every path, is the same order: the write side's answers and the
read side's views fold the log with one fold (issue #12; the symptom was CancelOrder
answering average_price 45000 where GetOrder answered 45000.00)."""

from __future__ import annotations

import asyncio

from service_harness import Exchange
from service_helpers import BUY, SELL, limit, place, place_settled

from clients.generated.exchange.v1 import market_data_service_pb2 as md
from clients.generated.exchange.v1 import order_command_service_pb2 as cmd
from clients.generated.exchange.v1 import order_query_service_pb2 as query
from clients.generated.exchange.v1 import types_pb2 as types

BOUND_S = 30.0


async def test_command_answers_queries_and_the_update_stream_agree_field_for_field(
    exchange: Exchange,
) -> None:
    updates = exchange.market_data.StreamOrderUpdates(md.StreamOrderUpdatesRequest(user_id="alice"))
    live = exchange.app.projections.live
    async with asyncio.timeout(BOUND_S):
        while live.subscriber_count() < 1:
            await asyncio.sleep(0.01)
    placed = await place(exchange, limit("alice", SELL, "45000.00", "1.5"))
    order_id = placed.order.order_id
    await exchange.settle(placed.position)
    await place_settled(exchange, limit("bob", BUY, "45000.00", "1.0"))

    got = (await exchange.queries.GetOrder(query.GetOrderRequest(order_id=order_id))).order
    listed = (await exchange.queries.ListOrders(query.ListOrdersRequest(user_id="alice"))).orders
    cancel = await exchange.commands.CancelOrder(
        cmd.CancelOrderRequest(user_id="alice", order_id=order_id)
    )
    async with asyncio.timeout(BOUND_S):
        streamed = [(await updates.read()).order for _ in range(3)]  # placed, accepted, fill
    updates.cancel()

    assert (got.status, got.filled_quantity, got.average_price) == (
        types.ORDER_STATUS_PARTIALLY_FILLED,
        "1.0000",
        "45000.00",
    )
    assert cancel.order == got  # the order as its stream stood before the cancel
    assert list(listed) == [got]
    assert streamed[-1] == got
    # The place answer is the order before the engine saw it: same order, PENDING then.
    assert placed.order == streamed[0]
    assert (placed.order.status, placed.order.created_at) == (
        types.ORDER_STATUS_PENDING,
        got.created_at,
    )
