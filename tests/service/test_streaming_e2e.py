"""Server streams and the streaming order entry, end to end through gRPC."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import grpc
import pytest
from service_harness import Exchange
from service_helpers import BTC, BUY, SELL, book, levels, limit, place, place_settled

from clients.generated.exchange.v1 import market_data_service_pb2 as md
from clients.generated.exchange.v1 import order_command_service_pb2 as cmd
from clients.generated.exchange.v1 import types_pb2 as types
from server.log_contract.layout import book_stream
from server.log_contract.mapper import decode

BOUND_S = 30.0


async def _subscribed(exchange: Exchange, count: int) -> None:
    """Wait until the server has registered `count` live subscribers (bounded)."""
    live = exchange.app.projections.live
    async with asyncio.timeout(BOUND_S):
        while live.subscriber_count() < count:
            await asyncio.sleep(0.01)


async def test_stream_trades_delivers_each_trade(exchange: Exchange) -> None:
    call = exchange.market_data.StreamTrades(md.StreamTradesRequest(instrument=BTC))
    await _subscribed(exchange, 1)
    maker = await place_settled(exchange, limit("alice", SELL, "100.00", "1.0"))
    taker = await place_settled(exchange, limit("bob", BUY, "100.00", "0.4"))

    async with asyncio.timeout(BOUND_S):
        message = await call.read()
    call.cancel()
    assert (message.trade.maker_order_id, message.trade.taker_order_id) == (maker, taker)
    assert Decimal(message.trade.price) == Decimal(100)
    assert Decimal(message.trade.quantity) == Decimal("0.4")
    assert message.position


async def test_stream_order_book_is_a_snapshot_then_contiguous_updates(
    exchange: Exchange,
) -> None:
    await place_settled(exchange, limit("alice", SELL, "101.00", "1.0"))
    call = exchange.market_data.StreamOrderBook(md.StreamOrderBookRequest(instrument=BTC))
    async with asyncio.timeout(BOUND_S):
        first = await call.read()
    assert first.WhichOneof("kind") == "snapshot"
    asks = {Decimal(level.price): Decimal(level.quantity) for level in first.snapshot.asks}
    bids: dict[Decimal, Decimal] = {}
    assert asks == {Decimal(101): Decimal(1)}

    await place_settled(exchange, limit("bob", BUY, "99.00", "2.0"))
    await place_settled(exchange, limit("carol", BUY, "101.00", "0.25"))
    expected_sequence = first.sequence + 1
    async with asyncio.timeout(BOUND_S):
        while True:
            current = await book(exchange)
            if current.sequence < expected_sequence:
                break
            message = await call.read()
            assert message.WhichOneof("kind") == "update"
            assert message.sequence == expected_sequence
            expected_sequence += 1
            for change in message.update.changes:
                side = bids if change.side == BUY else asks
                if Decimal(change.quantity) == 0:
                    side.pop(Decimal(change.price), None)
                else:
                    side[Decimal(change.price)] = Decimal(change.quantity)
            if expected_sequence > current.sequence:
                break
    call.cancel()
    current = await book(exchange)
    assert expected_sequence == current.sequence + 1
    assert sorted(bids.items(), reverse=True) == [(p, q) for p, q, _ in levels(current.bids)]
    assert sorted(asks.items()) == [(p, q) for p, q, _ in levels(current.asks)]
    assert asks == {Decimal(101): Decimal("0.75")} and bids == {Decimal(99): Decimal(2)}


async def test_stream_order_updates_follow_one_users_orders(exchange: Exchange) -> None:
    call = exchange.market_data.StreamOrderUpdates(md.StreamOrderUpdatesRequest(user_id="bob"))
    await _subscribed(exchange, 1)
    await place_settled(exchange, limit("alice", SELL, "100.00", "1.0"))
    taker = await place_settled(exchange, limit("bob", BUY, "100.00", "1.0"))

    seen: list[md.StreamOrderUpdatesResponse] = []
    async with asyncio.timeout(BOUND_S):
        while not seen or seen[-1].order.status != types.ORDER_STATUS_FILLED:
            seen.append(await call.read())
    call.cancel()
    assert {update.order.order_id for update in seen} == {taker}
    assert {update.order.user_id for update in seen} == {"bob"}
    filled = seen[-1]
    assert filled.trade.taker_order_id == taker
    assert Decimal(filled.order.filled_quantity) == Decimal(1)


async def test_stream_place_orders_answers_each_request(exchange: Exchange) -> None:
    # One account per stream: the stream's key is alice's (issue 13).
    requests = [
        cmd.StreamPlaceOrdersRequest(request_id=1, order=limit("alice", BUY, "99.00", "1.0")),
        cmd.StreamPlaceOrdersRequest(request_id=2, order=limit("alice", BUY, "99.001", "1.0")),
        cmd.StreamPlaceOrdersRequest(request_id=3, order=limit("alice", BUY, "98.00", "2.0")),
    ]

    async def send() -> object:
        for request in requests:
            yield request

    answers = {}
    async for answer in exchange.commands.StreamPlaceOrders(send()):
        answers[answer.request_id] = answer
    assert sorted(answers) == [1, 2, 3]
    assert answers[1].WhichOneof("result") == "placed"
    assert answers[3].WhichOneof("result") == "placed"
    error = answers[2].error
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [(v.field, v.reason) for v in error.field_violations] == [("price", "OFF_TICK_GRID")]
    await exchange.settle(max((answers[1].placed.position, answers[3].placed.position), key=_key))
    assert levels((await book(exchange)).bids) == [
        (Decimal("99.00"), Decimal("1.0"), 1),
        (Decimal("98.00"), Decimal("2.0"), 1),
    ]


def _key(token: str) -> tuple[int, ...]:
    return tuple(int(part) for part in token.split(":"))


async def test_read_your_writes_with_min_position(exchange: Exchange) -> None:
    from clients.generated.exchange.v1 import order_query_service_pb2 as query

    placed = await place(exchange, limit("alice", BUY, "99.00", "1.0"))
    # No settling: the query itself waits until the views hold the write.
    order = (
        await exchange.queries.GetOrder(
            query.GetOrderRequest(order_id=placed.order.order_id, min_position=placed.position),
            timeout=30,
        )
    ).order
    assert order.order_id == placed.order.order_id
    listed = await exchange.queries.ListOrders(
        query.ListOrdersRequest(user_id="alice", min_position=placed.position), timeout=30
    )
    assert [o.order_id for o in listed.orders] == [placed.order.order_id]


async def _trades_of(exchange: Exchange, count: int) -> tuple[list[str], list[str]]:
    """Place `count` trades against one resting sell; their taker ids and stream positions
    (read from a live subscription opened before them)."""
    call = exchange.market_data.StreamTrades(md.StreamTradesRequest(instrument=BTC))
    await _subscribed(exchange, 1)
    await place_settled(exchange, limit("maker", SELL, "100.00", "10.0"))
    takers = [
        await place_settled(exchange, limit(f"taker{n}", BUY, "100.00", "0.5"))
        for n in range(count)
    ]
    async with asyncio.timeout(BOUND_S):
        positions = [(await call.read()).position for _ in range(count)]
    call.cancel()
    return takers, positions


async def test_stream_trades_resumes_after_a_position_with_no_gap_and_no_repeat(
    exchange: Exchange,
) -> None:
    takers, positions = await _trades_of(exchange, 3)
    resumed = exchange.market_data.StreamTrades(
        md.StreamTradesRequest(instrument=BTC, after_position=positions[0])
    )
    async with asyncio.timeout(BOUND_S):
        missed = [await resumed.read() for _ in range(2)]
    assert [m.trade.taker_order_id for m in missed] == takers[1:]
    assert [m.position for m in missed] == positions[1:]
    later = await place_settled(exchange, limit("late", BUY, "100.00", "0.5"))
    async with asyncio.timeout(BOUND_S):
        live = await resumed.read()
    resumed.cancel()
    assert live.trade.taker_order_id == later


async def test_stream_trades_refuses_a_resume_too_far_back_or_malformed(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server import trade_feed

    _, positions = await _trades_of(exchange, 3)
    monkeypatch.setattr(trade_feed, "MAX_RESUMED_TRADES", 1)
    for after, code in (
        (positions[0], grpc.StatusCode.OUT_OF_RANGE),  # two missed, more than one
        ("yesterday", grpc.StatusCode.INVALID_ARGUMENT),
    ):
        call = exchange.market_data.StreamTrades(
            md.StreamTradesRequest(instrument=BTC, after_position=after)
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async with asyncio.timeout(BOUND_S):
                await call.read()
        assert refused.value.code() == code


async def test_the_book_stream_carries_the_engines_own_deltas(exchange: Exchange) -> None:
    """One delta type end to end: each update of StreamOrderBook is a BookLevelsChanged the
    engine wrote to the log, same sequence, same levels, nothing re-derived on the way."""
    call = exchange.market_data.StreamOrderBook(md.StreamOrderBookRequest(instrument=BTC))
    async with asyncio.timeout(BOUND_S):
        first = await call.read()
    assert (first.WhichOneof("kind"), first.sequence) == ("snapshot", 0)
    await place_settled(exchange, limit("alice", SELL, "101.00", "1.0"))
    await place_settled(exchange, limit("alice", SELL, "102.00", "0.5"))
    await place_settled(exchange, limit("bob", BUY, "102.00", "1.2"))  # takes 101, part of 102
    await place_settled(exchange, limit("carol", BUY, "99.00", "2.0"))

    store = exchange.app.event_store
    assert store is not None
    deltas = [decode(event) for event in await store.read_stream(book_stream(BTC))]
    updates = []
    async with asyncio.timeout(BOUND_S):
        while len(updates) < len(deltas):
            updates.append(await call.read())
    call.cancel()
    assert [d.sequence for d in deltas] == [1, 2, 3, 4]  # the taker never rests: one delta
    assert [u.sequence for u in updates] == [d.sequence for d in deltas]
    assert [
        [(c.side, c.price, c.quantity, c.order_count) for c in u.update.changes] for u in updates
    ] == [
        [
            (
                BUY if level.side == "BUY" else SELL,
                str(level.price),
                str(level.quantity),
                level.order_count,
            )
            for level in delta.levels
        ]
        for delta in deltas
    ]
    assert [
        (level.side.value, str(level.price), str(level.quantity), level.order_count)
        for level in deltas[2].levels
    ] == [("SELL", "101.00", "0.0000", 0), ("SELL", "102.00", "0.3000", 1)]
