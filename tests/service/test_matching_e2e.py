"""End to end through gRPC: commands in, engine through the log, views and book out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from service_harness import Exchange
from service_helpers import (
    BTC,
    BUY,
    SELL,
    book,
    get_order,
    gtd,
    levels,
    limit,
    market,
    place,
    place_settled,
)

from clients.generated.exchange.v1 import order_command_service_pb2 as cmd
from clients.generated.exchange.v1 import order_query_service_pb2 as query
from clients.generated.exchange.v1 import types_pb2 as types
from server.clock import clock_tick_event
from server.eventstore.port import ANY
from server.log_contract.layout import CLOCK_STREAM


async def test_crossing_limit_orders_trade_at_the_makers_price(exchange: Exchange) -> None:
    maker = await place_settled(exchange, limit("alice", SELL, "45000.00", "1.5"))
    taker = await place_settled(exchange, limit("bob", BUY, "45010.00", "1.5"))

    maker_order = await get_order(exchange, maker)
    taker_order = await get_order(exchange, taker)
    assert maker_order.status == types.ORDER_STATUS_FILLED
    assert taker_order.status == types.ORDER_STATUS_FILLED
    assert Decimal(taker_order.filled_quantity) == Decimal("1.5")
    assert Decimal(taker_order.average_price) == Decimal("45000.00")
    trades = await exchange.queries.ListTrades(query.ListTradesRequest(instrument=BTC))
    assert len(trades.trades) == 1
    trade = trades.trades[0]
    assert (Decimal(trade.price), Decimal(trade.quantity)) == (Decimal(45000), Decimal("1.5"))
    assert (trade.maker_order_id, trade.taker_order_id) == (maker, taker)
    assert trade.taker_side == BUY
    current = await book(exchange)
    assert levels(current.bids) == [] and levels(current.asks) == []
    assert Decimal(current.last_price) == Decimal(45000)


async def test_partial_fill_leaves_the_remainder_resting(exchange: Exchange) -> None:
    maker = await place_settled(exchange, limit("alice", SELL, "100.00", "2.0"))
    taker = await place_settled(exchange, limit("bob", BUY, "100.00", "0.5"))

    maker_order = await get_order(exchange, maker)
    assert maker_order.status == types.ORDER_STATUS_PARTIALLY_FILLED
    assert Decimal(maker_order.filled_quantity) == Decimal("0.5")
    assert (await get_order(exchange, taker)).status == types.ORDER_STATUS_FILLED
    assert levels((await book(exchange)).asks) == [(Decimal("100.00"), Decimal("1.5"), 1)]


async def test_cancel_takes_the_order_off_the_book(exchange: Exchange) -> None:
    order_id = await place_settled(exchange, limit("alice", BUY, "99.00", "1.0"))
    assert levels((await book(exchange)).bids) == [(Decimal(99), Decimal(1), 1)]

    response = await exchange.commands.CancelOrder(
        cmd.CancelOrderRequest(user_id="alice", order_id=order_id)
    )
    await exchange.settle(response.position)

    order = await get_order(exchange, order_id)
    assert order.status == types.ORDER_STATUS_CANCELLED
    assert order.reason == "USER_REQUESTED"
    assert levels((await book(exchange)).bids) == []


async def test_amend_changes_quantity_and_price(exchange: Exchange) -> None:
    order_id = await place_settled(exchange, limit("alice", BUY, "99.00", "1.0"))

    smaller = await exchange.commands.AmendOrder(
        cmd.AmendOrderRequest(user_id="alice", order_id=order_id, quantity="0.4")
    )
    await exchange.settle(smaller.position)
    assert levels((await book(exchange)).bids) == [(Decimal(99), Decimal("0.4"), 1)]

    repriced = await exchange.commands.AmendOrder(
        cmd.AmendOrderRequest(user_id="alice", order_id=order_id, price="98.50")
    )
    await exchange.settle(repriced.position)
    order = await get_order(exchange, order_id)
    assert (Decimal(order.price), Decimal(order.quantity)) == (Decimal("98.50"), Decimal("0.4"))
    assert order.status == types.ORDER_STATUS_OPEN
    assert levels((await book(exchange)).bids) == [(Decimal("98.50"), Decimal("0.4"), 1)]


async def test_market_order_stops_at_the_slippage_limit(exchange: Exchange) -> None:
    for price in ("100.00", "100.50", "102.00"):
        await place_settled(exchange, limit("alice", SELL, price, "1.0"))

    # 100 bps above the best ask at arrival (100.00) is 101.00: the 102.00 level is out.
    taker = await place_settled(exchange, market("bob", BUY, "3.0", max_slippage_bps=100))

    order = await get_order(exchange, taker)
    assert order.status == types.ORDER_STATUS_CANCELLED
    assert order.reason == "SLIPPAGE"
    assert Decimal(order.filled_quantity) == Decimal("2.0")
    assert Decimal(order.average_price) == Decimal("100.25")
    assert levels((await book(exchange)).asks) == [(Decimal("102.00"), Decimal("1.0"), 1)]


async def test_market_order_on_an_empty_book_is_cancelled(exchange: Exchange) -> None:
    taker = await place_settled(exchange, market("bob", BUY, "1.0"))
    order = await get_order(exchange, taker)
    assert (order.status, order.reason) == (types.ORDER_STATUS_CANCELLED, "NO_LIQUIDITY")


async def test_ioc_fills_what_it_can_and_cancels_the_rest(exchange: Exchange) -> None:
    await place_settled(exchange, limit("alice", SELL, "100.00", "1.0"))
    taker = await place_settled(
        exchange, limit("bob", BUY, "100.00", "2.5", time_in_force=types.TIME_IN_FORCE_IOC)
    )
    order = await get_order(exchange, taker)
    assert (order.status, order.reason) == (types.ORDER_STATUS_CANCELLED, "IOC_REMAINDER")
    assert Decimal(order.filled_quantity) == Decimal("1.0")
    current = await book(exchange)
    assert levels(current.bids) == [] and levels(current.asks) == []


async def test_fok_that_cannot_fill_completely_trades_nothing(exchange: Exchange) -> None:
    await place_settled(exchange, limit("alice", SELL, "100.00", "1.0"))
    taker = await place_settled(
        exchange, limit("bob", BUY, "100.00", "2.0", time_in_force=types.TIME_IN_FORCE_FOK)
    )
    order = await get_order(exchange, taker)
    assert (order.status, order.reason) == (types.ORDER_STATUS_CANCELLED, "FOK_NOT_FILLABLE")
    assert Decimal(order.filled_quantity) == 0
    assert levels((await book(exchange)).asks) == [(Decimal("100.00"), Decimal("1.0"), 1)]
    trades = await exchange.queries.ListTrades(query.ListTradesRequest(instrument=BTC))
    assert list(trades.trades) == []


async def test_fok_that_can_fill_completely_fills(exchange: Exchange) -> None:
    await place_settled(exchange, limit("alice", SELL, "100.00", "1.0"))
    await place_settled(exchange, limit("carol", SELL, "100.50", "1.0"))
    taker = await place_settled(
        exchange, limit("bob", BUY, "101.00", "2.0", time_in_force=types.TIME_IN_FORCE_FOK)
    )
    order = await get_order(exchange, taker)
    assert order.status == types.ORDER_STATUS_FILLED
    assert Decimal(order.average_price) == Decimal("100.25")


async def test_gtd_order_expires_when_logged_time_reaches_it(exchange: Exchange) -> None:
    start = datetime.now(UTC)
    order_id = await place_settled(
        exchange, gtd("alice", BUY, "99.00", "1.0", start + timedelta(minutes=10))
    )
    assert (await get_order(exchange, order_id)).status == types.ORDER_STATUS_OPEN

    store = exchange.app.event_store
    assert store is not None
    early = await store.append(CLOCK_STREAM, [clock_tick_event(start + timedelta(minutes=9))], ANY)
    await exchange.settle(early.positions[0].to_token())
    assert (await get_order(exchange, order_id)).status == types.ORDER_STATUS_OPEN

    due = await store.append(CLOCK_STREAM, [clock_tick_event(start + timedelta(minutes=10))], ANY)
    await exchange.settle(due.positions[0].to_token())
    assert (await get_order(exchange, order_id)).status == types.ORDER_STATUS_EXPIRED
    assert levels((await book(exchange)).bids) == []


async def test_post_only_that_would_take_is_rejected(exchange: Exchange) -> None:
    await place_settled(exchange, limit("alice", SELL, "100.00", "1.0"))
    order_id = await place_settled(exchange, limit("bob", BUY, "100.00", "1.0", post_only=True))
    order = await get_order(exchange, order_id)
    assert (order.status, order.reason) == (types.ORDER_STATUS_REJECTED, "POST_ONLY_WOULD_TAKE")


async def test_client_order_id_makes_placing_idempotent(exchange: Exchange) -> None:
    request = limit("alice", BUY, "99.00", "1.0", client_order_id="my-1")
    first = await place(exchange, request)
    retry = await place(exchange, request)

    assert first.duplicate is False and retry.duplicate is True
    assert retry.order.order_id == first.order.order_id
    assert retry.position == first.position
    await exchange.settle(first.position)
    assert levels((await book(exchange)).bids) == [(Decimal(99), Decimal(1), 1)]
    # Another user may reuse the same client_order_id: it is per user.
    other = await place(exchange, limit("bob", BUY, "98.00", "1.0", client_order_id="my-1"))
    assert other.order.order_id != first.order.order_id
    # A retry after the engine handled the order returns its current state.
    await exchange.settle(other.position)
    again = await place(exchange, request)
    assert again.duplicate and again.order.status == types.ORDER_STATUS_OPEN


async def test_stop_order_triggers_on_the_last_trade_price(exchange: Exchange) -> None:
    await place_settled(exchange, limit("alice", SELL, "100.00", "1.0"))
    await place_settled(exchange, limit("alice", SELL, "105.00", "1.0"))
    stop = await place_settled(
        exchange,
        cmd.PlaceOrderRequest(
            user_id="carol",
            instrument=BTC,
            side=BUY,
            type=types.ORDER_TYPE_STOP_MARKET,
            quantity="1.0",
            stop_price="100.00",
        ),
    )
    assert (await get_order(exchange, stop)).status == types.ORDER_STATUS_TRIGGER_PENDING
    await place_settled(exchange, limit("bob", BUY, "100.00", "1.0"))
    order = await get_order(exchange, stop)
    assert order.status == types.ORDER_STATUS_FILLED
    assert Decimal(order.average_price) == Decimal(105)


async def test_list_orders_pages_and_filters_a_users_orders(exchange: Exchange) -> None:
    placed = [
        await place_settled(exchange, limit("alice", BUY, price, "1.0"))
        for price in ("97.00", "98.00", "99.00")
    ]
    await place_settled(exchange, limit("bob", BUY, "96.00", "1.0"))
    first = await exchange.queries.ListOrders(query.ListOrdersRequest(user_id="alice", page_size=2))
    second = await exchange.queries.ListOrders(
        query.ListOrdersRequest(user_id="alice", page_size=2, page_token=first.next_page_token)
    )
    assert [o.order_id for o in first.orders] == [placed[2], placed[1]]  # most recent first
    assert [o.order_id for o in second.orders] == [placed[0]]
    assert second.next_page_token == ""

    response = await exchange.commands.CancelOrder(
        cmd.CancelOrderRequest(user_id="alice", order_id=placed[1])
    )
    await exchange.settle(response.position)
    cancelled = await exchange.queries.ListOrders(
        query.ListOrdersRequest(user_id="alice", status=types.ORDER_STATUS_CANCELLED)
    )
    assert [o.order_id for o in cancelled.orders] == [placed[1]]
