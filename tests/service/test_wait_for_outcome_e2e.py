"""Commands with `wait_for_outcome`: the answer is the engine's decision, not PENDING.

Given a running exchange (real gRPC, PostgreSQL, Redis), when a command asks to wait, then
it answers with the order as the engine left it and a position after the engine's answer;
when the deadline comes first, DEADLINE_EXCEEDED, and the order is still placed once.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import grpc
import pytest
from api_keys import bearer
from service_harness import Exchange
from service_helpers import BUY, SELL, get_order, limit

from clients.generated.exchange.v1 import order_command_service_pb2 as cmd
from clients.generated.exchange.v1 import types_pb2 as types
from server.log_contract.layout import ORDER_PLACE_REQUESTED, order_stream

WAIT = 30.0


async def place_waiting(
    exchange: Exchange, request: cmd.PlaceOrderRequest
) -> cmd.PlaceOrderResponse:
    request.wait_for_outcome = True
    return await exchange.commands.PlaceOrder(request, timeout=WAIT)


async def test_a_crossing_order_answers_filled_with_its_average_price(exchange: Exchange) -> None:
    maker = await place_waiting(exchange, limit("alice", SELL, "45000.00", "1.0"))
    assert maker.order.status == types.ORDER_STATUS_OPEN

    taker = await place_waiting(exchange, limit("bob", BUY, "45010.00", "1.0"))

    assert taker.order.status == types.ORDER_STATUS_FILLED
    assert Decimal(taker.order.filled_quantity) == Decimal("1")
    assert Decimal(taker.order.average_price) == Decimal("45000")
    # The position is after the engine's answer: a query with it sees both sides filled.
    seen = await get_order(exchange, maker.order.order_id, min_position=taker.position)
    assert seen.status == types.ORDER_STATUS_FILLED
    assert await get_order(exchange, taker.order.order_id, taker.position) == taker.order


async def test_a_post_only_that_would_take_answers_rejected_with_its_reason(
    exchange: Exchange,
) -> None:
    await place_waiting(exchange, limit("alice", SELL, "100.00", "1.0"))

    answer = await place_waiting(exchange, limit("bob", BUY, "100.00", "1.0", post_only=True))

    assert (answer.order.status, answer.order.reason) == (
        types.ORDER_STATUS_REJECTED,
        "POST_ONLY_WOULD_TAKE",
    )


async def test_a_cancel_answers_cancelled(exchange: Exchange) -> None:
    placed = await place_waiting(exchange, limit("alice", BUY, "90.00", "2.0"))

    cancelled = await exchange.commands.CancelOrder(
        cmd.CancelOrderRequest(
            user_id="alice", order_id=placed.order.order_id, wait_for_outcome=True
        ),
        timeout=WAIT,
    )

    assert (cancelled.order.status, cancelled.order.reason) == (
        types.ORDER_STATUS_CANCELLED,
        "USER_REQUESTED",
    )
    assert cancelled.rejection_reason == ""
    assert await get_order(exchange, placed.order.order_id, cancelled.position) == cancelled.order


async def test_a_cancel_all_answers_the_orders_it_cancelled(exchange: Exchange) -> None:
    first = await place_waiting(exchange, limit("kim", BUY, "90.00", "1.0"))
    second = await place_waiting(exchange, limit("kim", SELL, "110.00", "1.0"))
    other = await place_waiting(exchange, limit("lee", BUY, "91.00", "1.0"))

    answer = await exchange.commands.CancelAllOrders(
        cmd.CancelAllOrdersRequest(user_id="kim", wait_for_outcome=True), timeout=WAIT
    )

    assert sorted(order.order_id for order in answer.cancelled_orders) == sorted(
        [first.order.order_id, second.order.order_id]
    )
    assert {(order.status, order.reason) for order in answer.cancelled_orders} == {
        (types.ORDER_STATUS_CANCELLED, "MASS_CANCEL")
    }
    still = await get_order(exchange, other.order.order_id, answer.position)
    assert still.status == types.ORDER_STATUS_OPEN
    again = await exchange.commands.CancelAllOrders(
        cmd.CancelAllOrdersRequest(user_id="kim", wait_for_outcome=True), timeout=WAIT
    )
    assert list(again.cancelled_orders) == []


async def test_an_amend_answers_the_amended_order(exchange: Exchange) -> None:
    placed = await place_waiting(exchange, limit("alice", BUY, "90.00", "2.0"))

    amended = await exchange.commands.AmendOrder(
        cmd.AmendOrderRequest(
            user_id="alice",
            order_id=placed.order.order_id,
            price="91.00",
            quantity="1.5",
            wait_for_outcome=True,
        ),
        timeout=WAIT,
    )

    assert amended.order.status == types.ORDER_STATUS_OPEN
    assert (Decimal(amended.order.price), Decimal(amended.order.quantity)) == (
        Decimal("91"),
        Decimal("1.5"),
    )
    assert amended.rejection_reason == ""


async def test_a_cancel_the_engine_rejects_answers_the_order_and_the_reason(
    exchange: Exchange,
) -> None:
    # With the engine stopped, a resting sell, a buy that fills it and a cancel of the sell
    # are all written; the engine then reads the cancel after the sell has filled.
    runner = exchange.app.engine_runner
    assert runner is not None
    await runner.stop()
    sell = await exchange.commands.PlaceOrder(limit("alice", SELL, "100.00", "1.0"), timeout=WAIT)
    await exchange.commands.PlaceOrder(limit("bob", BUY, "100.00", "1.0"), timeout=WAIT)
    cancel = asyncio.ensure_future(
        exchange.commands.CancelOrder(
            cmd.CancelOrderRequest(
                user_id="alice", order_id=sell.order.order_id, wait_for_outcome=True
            ),
            timeout=WAIT,
        )
    )
    await _until_written(exchange, sell.order.order_id, versions=2)
    runner.start()

    answer = await cancel

    assert answer.order.status == types.ORDER_STATUS_FILLED
    assert answer.rejection_reason != ""


async def test_a_deadline_before_the_engines_answer_leaves_the_order_placed_once(
    exchange: Exchange,
) -> None:
    runner = exchange.app.engine_runner
    event_store = exchange.app.event_store
    assert runner is not None and event_store is not None
    await runner.stop()  # the engine answers nothing until it runs again
    request = limit("alice", BUY, "90.00", "1.0", client_order_id="slow-1")
    request.wait_for_outcome = True

    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await exchange.commands.PlaceOrder(request, timeout=0.5)

    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    runner.start()
    retried = await exchange.commands.PlaceOrder(request, timeout=WAIT)
    assert retried.duplicate
    assert retried.order.status == types.ORDER_STATUS_OPEN
    events = await event_store.read_stream(order_stream(retried.order.order_id))
    assert [event.type for event in events].count(ORDER_PLACE_REQUESTED) == 1


async def test_stream_place_orders_takes_the_flag_per_request(exchange: Exchange) -> None:
    await place_waiting(exchange, limit("alice", SELL, "100.00", "1.0"))
    waiting = limit("bob", BUY, "100.00", "1.0", wait_for_outcome=True)
    not_waiting = limit("bob", BUY, "80.00", "1.0")

    # Written after the call starts, so the call names its account's key itself.
    assert exchange.keys is not None
    call = exchange.commands.StreamPlaceOrders(
        timeout=WAIT, metadata=bearer(await exchange.keys.key_for("bob"))
    )
    await call.write(cmd.StreamPlaceOrdersRequest(request_id=1, order=waiting))
    await call.write(cmd.StreamPlaceOrdersRequest(request_id=2, order=not_waiting))
    await call.done_writing()
    answers = {answer.request_id: answer async for answer in call}

    assert answers[1].placed.order.status == types.ORDER_STATUS_FILLED
    assert answers[2].placed.order.status == types.ORDER_STATUS_PENDING


async def _until_written(exchange: Exchange, order_id: str, versions: int) -> None:
    """Wait (through a subscription, no polling) until the order's stream holds `versions`
    events."""
    event_store = exchange.app.event_store
    assert event_store is not None
    subscription = event_store.subscribe_stream(order_stream(order_id))
    seen = 0
    async for _ in subscription:
        seen += 1
        if seen == versions:
            break
    await subscription.aclose()  # type: ignore[attr-defined]
