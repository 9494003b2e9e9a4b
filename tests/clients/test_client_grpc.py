"""The Python client against a real grpc.aio server with canned answers (tests/clients/conftest.py).

Specifies what each client method sends and what it returns, including the decoding of
error statuses and their rich details, stream ordering, and order-entry pairing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import grpc
import pytest
from canned_exchange import CREATED_AT, EXECUTED_AT, UPDATED_AT, CannedExchange

from clients.client import ExchangeClient
from clients.enums import OrderStatus, OrderType, SelfTradePrevention, Side, TimeInForce
from clients.errors import (
    AbortedError,
    DeadlineExceededError,
    ExchangeError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)
from clients.generated.exchange.v1 import types_pb2
from clients.models import (
    BookSnapshot,
    BookUpdate,
    Instrument,
    LevelChange,
    NewOrder,
    Order,
    PriceLevel,
    Trade,
)

CANNED_TRADE_1 = Trade(
    trade_id="BTC-USD-1",
    instrument="BTC-USD",
    price=Decimal("44999.50"),
    quantity=Decimal("0.5"),
    maker_order_id="o-0",
    taker_order_id="o-1",
    taker_side=Side.BUY,
    executed_at=EXECUTED_AT,
)


def canned_order_model(order_id: str = "o-1") -> Order:
    return Order(
        order_id=order_id,
        client_order_id="c-1",
        user_id="alice",
        instrument="BTC-USD",
        side=Side.BUY,
        type=OrderType.LIMIT,
        price=Decimal("45000.00"),
        quantity=Decimal("1.5000"),
        filled_quantity=Decimal("0.5"),
        average_price=Decimal("44999.50"),
        status=OrderStatus.PARTIALLY_FILLED,
        reason="",
        time_in_force=TimeInForce.GTC,
        created_at=CREATED_AT,
        updated_at=UPDATED_AT,
        stop_price=None,
        post_only=False,
        expire_time=None,
    )


async def test_ping_succeeds(exchange: ExchangeClient) -> None:
    assert await exchange.ping() is None


async def test_place_order_sends_exact_wire_fields_and_returns_pending_order(
    exchange: ExchangeClient, canned_exchange: CannedExchange
) -> None:
    expiry = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    placed = await exchange.place_order(
        NewOrder(
            user_id="alice",
            instrument="BTC-USD",
            side=Side.SELL,
            type=OrderType.STOP_LIMIT,
            price=Decimal("45000.00"),
            stop_price="44000.10",
            quantity=Decimal("1.5000"),
            time_in_force=TimeInForce.GTD,
            expire_time=expiry,
            post_only=True,
            max_slippage_bps=25,
            stp=SelfTradePrevention.CANCEL_BOTH,
            client_order_id="wire-fields",
        )
    )
    sent = canned_exchange.commands.placed[-1]
    assert (sent.user_id, sent.instrument, sent.client_order_id) == (
        "alice",
        "BTC-USD",
        "wire-fields",
    )
    assert sent.side == types_pb2.SIDE_SELL
    assert sent.type == types_pb2.ORDER_TYPE_STOP_LIMIT
    assert (sent.price, sent.stop_price, sent.quantity) == ("45000.00", "44000.10", "1.5000")
    assert sent.time_in_force == types_pb2.TIME_IN_FORCE_GTD
    assert sent.expire_time.ToDatetime(tzinfo=UTC) == expiry
    assert sent.post_only is True
    assert sent.max_slippage_bps == 25
    assert sent.stp == types_pb2.SELF_TRADE_PREVENTION_CANCEL_BOTH

    assert placed.duplicate is False
    assert placed.position == f"p-{len(canned_exchange.commands.placed)}"
    assert placed.order.status is OrderStatus.PENDING
    assert placed.order.side is Side.SELL
    assert placed.order.type is OrderType.STOP_LIMIT
    assert placed.order.price == Decimal("45000.00")
    assert placed.order.stop_price == Decimal("44000.10")
    assert placed.order.quantity == Decimal("1.5000")
    assert placed.order.filled_quantity == Decimal(0)
    assert placed.order.average_price is None
    assert placed.order.expire_time == expiry
    assert placed.order.post_only is True


async def test_market_order_sends_empty_price(
    exchange: ExchangeClient, canned_exchange: CannedExchange
) -> None:
    placed = await exchange.place_order(
        NewOrder(
            user_id="bob",
            instrument="ETH-USD",
            side=Side.BUY,
            type=OrderType.MARKET,
            quantity="2",
            time_in_force=TimeInForce.IOC,
        )
    )
    sent = canned_exchange.commands.placed[-1]
    assert (sent.price, sent.stop_price, sent.HasField("expire_time")) == ("", "", False)
    assert placed.order.price is None
    assert placed.order.stop_price is None


async def test_idempotent_retry_reports_duplicate_with_the_original_order(
    exchange: ExchangeClient,
) -> None:
    order = NewOrder(
        user_id="alice",
        instrument="BTC-USD",
        side=Side.BUY,
        price="1.00",
        quantity="1",
        client_order_id="retry-me",
    )
    first = await exchange.place_order(order)
    again = await exchange.place_order(order)
    assert again.duplicate is True
    assert again.order == first.order


async def test_invalid_argument_carries_every_field_violation(exchange: ExchangeClient) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        await exchange.place_order(
            NewOrder(
                user_id="alice", instrument="BTC-USD", side=Side.BUY, price="0.001", quantity=""
            )
        )
    error = raised.value
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.message == "invalid order"
    assert error.field_violations == (
        FieldViolation("quantity", "quantity is required", "REQUIRED"),
        FieldViolation("price", "price 0.001 is not a multiple of 0.01", "OFF_TICK_GRID"),
    )
    assert str(error) == (
        "INVALID_ARGUMENT: invalid order\n"
        "  quantity: quantity is required [REQUIRED]\n"
        "  price: price 0.001 is not a multiple of 0.01 [OFF_TICK_GRID]"
    )


async def test_cancel_returns_order_and_position(exchange: ExchangeClient) -> None:
    result = await exchange.cancel_order("alice", "o-1")
    assert result.position == "p-cancel"
    assert result.order == canned_order_model("o-1")


@pytest.mark.parametrize(
    ("user_id", "order_id", "error_type", "code"),
    [
        ("alice", "missing", NotFoundError, grpc.StatusCode.NOT_FOUND),
        ("mallory", "o-1", PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
        ("alice", "closed", FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    ],
)
async def test_cancel_errors_map_to_typed_exceptions(
    exchange: ExchangeClient,
    user_id: str,
    order_id: str,
    error_type: type[ExchangeError],
    code: grpc.StatusCode,
) -> None:
    with pytest.raises(error_type) as raised:
        await exchange.cancel_order(user_id, order_id)
    assert raised.value.code is code
    assert raised.value.field_violations == ()


async def test_error_info_detail_gives_reason_and_metadata(exchange: ExchangeClient) -> None:
    with pytest.raises(FailedPreconditionError) as raised:
        await exchange.cancel_order("alice", "closed")
    assert raised.value.message == "order closed is FILLED"
    assert raised.value.reason == "ORDER_CLOSED"
    assert raised.value.metadata == {"order_id": "x"}


async def test_amend_sends_only_given_fields(exchange: ExchangeClient) -> None:
    result = await exchange.amend_order("alice", "o-5", quantity=Decimal("1.0"))
    assert result.position == "p-amend"
    assert result.order.quantity == Decimal("1.0")
    assert result.order.price == Decimal("45000.00")
    repriced = await exchange.amend_order("alice", "o-5", price="44990.00")
    assert repriced.order.price == Decimal("44990.00")
    assert repriced.order.quantity == Decimal("1.5000")


async def test_get_order_decodes_every_field_and_forwards_min_position(
    exchange: ExchangeClient, canned_exchange: CannedExchange
) -> None:
    order = await exchange.get_order("o-1", user_id="alice", min_position="p-3")
    assert order == canned_order_model("o-1")
    assert order.remaining_quantity == Decimal("1.0000")
    sent = canned_exchange.queries.requests[-1]
    assert (sent.order_id, sent.user_id, sent.min_position) == ("o-1", "alice", "p-3")


async def test_get_order_errors(exchange: ExchangeClient) -> None:
    with pytest.raises(NotFoundError):
        await exchange.get_order("missing")
    with pytest.raises(DeadlineExceededError) as raised:
        await exchange.get_order("o-1", min_position="p-future")
    assert raised.value.message == "views behind p-future"


async def test_list_orders_pages_and_filters(
    exchange: ExchangeClient, canned_exchange: CannedExchange
) -> None:
    first = await exchange.list_orders(
        "alice", instrument="BTC-USD", status=OrderStatus.OPEN, page_size=2
    )
    sent = canned_exchange.queries.requests[-1]
    assert (sent.user_id, sent.instrument, sent.page_size, sent.page_token) == (
        "alice",
        "BTC-USD",
        2,
        "",
    )
    assert sent.status == types_pb2.ORDER_STATUS_OPEN
    assert [order.order_id for order in first.orders] == ["o-2", "o-1"]
    assert first.next_page_token == "page-2"
    second = await exchange.list_orders("alice", page_token=first.next_page_token)
    assert canned_exchange.queries.requests[-1].status == types_pb2.ORDER_STATUS_UNSPECIFIED
    assert [order.order_id for order in second.orders] == ["o-0"]
    assert second.next_page_token == ""


async def test_get_order_book(exchange: ExchangeClient, canned_exchange: CannedExchange) -> None:
    book = await exchange.get_order_book("BTC-USD", depth=10, min_position="p-1")
    sent = canned_exchange.queries.requests[-1]
    assert (sent.instrument, sent.depth, sent.min_position) == ("BTC-USD", 10, "p-1")
    assert book.instrument == "BTC-USD"
    assert book.bids == (
        PriceLevel(Decimal("44999.50"), Decimal("1.2500"), 2),
        PriceLevel(Decimal("44990.00"), Decimal("3"), 1),
    )
    assert book.asks == (PriceLevel(Decimal("45001.00"), Decimal("0.0001"), 1),)
    assert book.sequence == 42
    assert book.last_price == Decimal("45000.00")


async def test_list_trades(exchange: ExchangeClient) -> None:
    page = await exchange.list_trades("BTC-USD", page_size=2)
    assert [trade.trade_id for trade in page.trades] == ["BTC-USD-2", "BTC-USD-1"]
    assert page.trades[1] == CANNED_TRADE_1
    assert page.next_page_token == ""


async def test_list_instruments(exchange: ExchangeClient) -> None:
    assert await exchange.list_instruments() == [
        Instrument("BTC-USD", Decimal("0.01"), Decimal("0.0001"), None),
        Instrument("ETH-USD", Decimal("0.01"), Decimal("0.001"), Decimal("0.01")),
    ]


async def test_stream_trades_in_order(exchange: ExchangeClient) -> None:
    events = [event async for event in exchange.stream_trades("BTC-USD")]
    assert [(event.trade.trade_id, event.position) for event in events] == [
        ("BTC-USD-1", "p-BTC-USD-1"),
        ("BTC-USD-2", "p-BTC-USD-2"),
    ]
    assert events[0].trade == CANNED_TRADE_1


async def test_leaving_a_stream_early_cancels_the_call(
    exchange: ExchangeClient, canned_exchange: CannedExchange
) -> None:
    stream = exchange.stream_trades("endless-early-exit")
    received = []
    async for event in stream:
        received.append(event.trade.trade_id)
        if len(received) == 2:
            break
    await stream.aclose()
    # The server handler was parked forever; it ends only because the client cancelled.
    await asyncio.wait_for(
        canned_exchange.market_data.trade_streams_ended["endless-early-exit"].wait(), 10
    )
    assert received == ["BTC-USD-1", "BTC-USD-2"]


async def test_stream_order_book_snapshot_then_updates(exchange: ExchangeClient) -> None:
    messages = [message async for message in exchange.stream_order_book("ETH-USD", depth=5)]
    assert messages == [
        BookSnapshot(
            instrument="ETH-USD",
            sequence=7,
            bids=(PriceLevel(Decimal("100.00"), Decimal("2"), 1),),
            asks=(PriceLevel(Decimal("101.00"), Decimal("1"), 1),),
            position="p-7",
        ),
        BookUpdate(
            instrument="ETH-USD",
            sequence=8,
            changes=(
                LevelChange(Side.SELL, Decimal("101.00"), Decimal("0"), 0),
                LevelChange(Side.BUY, Decimal("100.00"), Decimal("1.5"), 1),
            ),
            position="p-8",
        ),
    ]


async def test_stream_order_updates_with_and_without_fill(exchange: ExchangeClient) -> None:
    updates = [update async for update in exchange.stream_order_updates("alice")]
    assert [(u.event_type, u.order.order_id, u.position) for u in updates] == [
        ("OrderPartiallyFilled", "o-1", "p-9"),
        ("OrderAccepted", "o-3", "p-10"),
    ]
    assert updates[0].trade == CANNED_TRADE_1
    assert updates[1].trade is None
    assert updates[1].order.status is OrderStatus.OPEN


async def test_lagged_subscriber_gets_aborted_error_after_delivered_messages(
    exchange: ExchangeClient,
) -> None:
    received: list[str] = []
    with pytest.raises(AbortedError) as raised:
        async for update in exchange.stream_order_updates("slow"):
            received.append(update.event_type)
    assert received == ["OrderPartiallyFilled", "OrderAccepted"]
    assert raised.value.message == "subscriber lagged; resubscribe"


def _entry_order(index: int, *, price: str = "100.00", user_id: str = "alice") -> NewOrder:
    return NewOrder(
        user_id=user_id,
        instrument="BTC-USD",
        side=Side.BUY,
        price=price,
        quantity="1",
        client_order_id=f"entry-{index}-{price}-{user_id}",
    )


async def test_order_entry_pairs_answers_by_request_id(exchange: ExchangeClient) -> None:
    async with exchange.order_entry() as entry:
        futures = [await entry.submit(_entry_order(index)) for index in range(5)]
    # Closing half-closes and drains, so every answer is in. The canned server answers each
    # pair second-first (and the odd last one at the end); each future still gets its own.
    results = [future.result() for future in futures]
    assert [result.order.client_order_id for result in results] == [
        f"entry-{index}-100.00-alice" for index in range(5)
    ]
    assert all(result.order.status is OrderStatus.PENDING for result in results)
    assert entry.in_flight == 0


async def test_order_entry_place_waits_for_its_answer(exchange: ExchangeClient) -> None:
    async with exchange.order_entry() as entry:
        first = await entry.submit(_entry_order(1, price="7.00"))
        # The canned server answers once it holds a pair, so place() returns here.
        second = await entry.place(_entry_order(2, price="7.00"))
    assert first.result().order.client_order_id == "entry-1-7.00-alice"
    assert second.order.client_order_id == "entry-2-7.00-alice"


async def test_order_entry_refusal_fails_only_that_order(exchange: ExchangeClient) -> None:
    async with exchange.order_entry() as entry:
        good = await entry.submit(_entry_order(1, price="8.00"))
        bad = await entry.submit(_entry_order(2, price="100.001"))
        after = await entry.submit(_entry_order(3, price="8.00"))
    assert good.result().order.client_order_id == "entry-1-8.00-alice"
    assert after.result().order.client_order_id == "entry-3-8.00-alice"
    error = bad.exception()
    assert isinstance(error, InvalidArgumentError)
    assert error.field_violations == (
        FieldViolation("price", "price 0.001 is not a multiple of 0.01", "OFF_TICK_GRID"),
    )


async def test_order_entry_call_failure_fails_pending_orders(exchange: ExchangeClient) -> None:
    async with exchange.order_entry() as entry:
        doomed = await entry.submit(_entry_order(1, user_id="stream-breaker"))
        with pytest.raises(UnavailableError) as raised:
            await doomed
    assert raised.value.message == "shutting down"


async def test_unreachable_service_raises_unavailable() -> None:
    async with ExchangeClient.connect("127.0.0.1:1", timeout=5.0) as client:
        with pytest.raises(UnavailableError):
            await client.ping()


async def test_wait_ready_connects_or_reports_unavailable(exchange: ExchangeClient) -> None:
    await exchange.wait_ready(10)
    async with ExchangeClient.connect("127.0.0.1:1") as unreachable:
        with pytest.raises(UnavailableError, match=r"not connected after 0\.2 s"):
            await unreachable.wait_ready(0.2)
