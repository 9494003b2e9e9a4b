"""Per-key limits through real gRPC: the command rate limit (RESOURCE_EXHAUSTED with
RetryInfo, per order in StreamPlaceOrders), the cap on open streams, the message size cap,
and the bound on a `min_position` wait.

Every test client here shares one key (today the peer's address; with identities, the
harness's one key), so these tests hold whichever `limit_key_of` gives: they read the
metrics summed over keys.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from api_keys import bearer
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import REGISTRY
from service_harness import Exchange, running_exchange, service_settings
from service_helpers import BUY, SELL, limit

from clients.generated.exchange.v1 import market_data_service_pb2 as md
from clients.generated.exchange.v1 import order_command_service_pb2 as cmd
from clients.generated.exchange.v1 import order_query_service_pb2 as query
from server.eventstore.port import LogPosition

BTC = "BTC-USD"


def _metric_total(name: str) -> float:
    """A metric summed over its label sets (the keys)."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == name
    )


def _retry_delay_s(error: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no rich status"
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    raise AssertionError("no RetryInfo in the status")


@pytest.fixture
async def limited(fresh_database_url: str, service_redis_url: str) -> AsyncIterator[Exchange]:
    """A burst of 2 commands, refilled at 1 a second; 3 open streams."""
    settings = service_settings(
        fresh_database_url,
        service_redis_url,
        rate_limit_per_s=1.0,
        rate_limit_burst=2,
        max_streams_per_key=3,
    )
    async with running_exchange(settings) as exchange:
        yield exchange


async def _refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    return refused.value


async def test_an_empty_bucket_is_resource_exhausted_with_retry_info_then_refills(
    limited: Exchange,
) -> None:
    refused_before = _metric_total("exchange_rate_limited_total")
    first = await limited.commands.PlaceOrder(limit("alice", BUY, "100", "1"), timeout=30)
    await limited.commands.PlaceOrder(limit("alice", BUY, "101", "1"), timeout=30)

    error = await _refused(
        limited.commands.PlaceOrder(limit("alice", BUY, "102", "1", client_order_id="late"))
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    delay = _retry_delay_s(error)
    assert 0 < delay <= 1.0  # the time until one token, at 1 token a second
    assert _metric_total("exchange_rate_limited_total") == refused_before + 1

    # Nothing was written for the refused call: its client_order_id names no order.
    await limited.settle(first.position)
    listed = await limited.queries.ListOrders(query.ListOrdersRequest(user_id="alice"), timeout=30)
    assert len(listed.orders) == 2
    assert "late" not in {order.client_order_id for order in listed.orders}

    # Waiting what RetryInfo said is the client's part of the protocol, not a poll.
    await asyncio.sleep(delay)
    again = await limited.commands.PlaceOrder(
        limit("alice", BUY, "102", "1", client_order_id="late"), timeout=30
    )
    assert again.order.client_order_id == "late"


async def test_every_command_spends_from_the_same_bucket(
    fresh_database_url: str, service_redis_url: str
) -> None:
    settings = service_settings(
        fresh_database_url, service_redis_url, rate_limit_per_s=0.001, rate_limit_burst=1
    )
    async with running_exchange(settings) as exchange:
        placed = await exchange.commands.PlaceOrder(limit("alice", BUY, "100", "1"), timeout=30)
        order_id = placed.order.order_id
        for call in (
            exchange.commands.PlaceOrder(limit("alice", BUY, "100", "1")),
            exchange.commands.CancelOrder(
                cmd.CancelOrderRequest(user_id="alice", order_id=order_id)
            ),
            exchange.commands.AmendOrder(
                cmd.AmendOrderRequest(user_id="alice", order_id=order_id, quantity="2")
            ),
            exchange.commands.CancelAllOrders(cmd.CancelAllOrdersRequest(user_id="alice")),
        ):
            error = await _refused(call)
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert _retry_delay_s(error) > 900  # 1 token per 1000 s
        # Queries are not commands: they still answer.
        await exchange.queries.ListInstruments(query.ListInstrumentsRequest(), timeout=30)


async def _requests(
    queue: asyncio.Queue[cmd.StreamPlaceOrdersRequest | None],
) -> AsyncIterator[cmd.StreamPlaceOrdersRequest]:
    while (request := await queue.get()) is not None:
        yield request


async def test_the_stream_entry_answers_each_order_over_the_limit_and_goes_on(
    limited: Exchange,
) -> None:
    requests: asyncio.Queue[cmd.StreamPlaceOrdersRequest | None] = asyncio.Queue()
    call = limited.commands.StreamPlaceOrders(_requests(requests), timeout=60)
    answers = {}
    for request_id, price in ((1, "100"), (2, "101"), (3, "102")):
        order = limit("alice", BUY, price, "1", client_order_id=f"s-{request_id}")
        await requests.put(cmd.StreamPlaceOrdersRequest(request_id=request_id, order=order))
    for _ in range(3):
        answer = await call.read()
        answers[answer.request_id] = answer
    assert [answers[r].HasField("placed") for r in (1, 2, 3)].count(True) == 2
    refused = next(answer for answer in answers.values() if answer.HasField("error"))
    assert refused.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert "rate limit" in refused.error.message

    # The stream goes on: after the refill the next order is placed on the same stream.
    await asyncio.sleep(1.0)  # one token at 1 a second (RetryInfo's wait, as above)
    order = limit("alice", SELL, "200", "1", client_order_id="s-4")
    await requests.put(cmd.StreamPlaceOrdersRequest(request_id=4, order=order))
    answer = await call.read()
    assert answer.request_id == 4 and answer.HasField("placed")
    await requests.put(None)
    assert await call.code() == grpc.StatusCode.OK


async def test_the_stream_cap_refuses_one_more_and_a_closed_stream_frees_its_slot(
    limited: Exchange,
) -> None:
    # Every stream here is alice's: the cap is per key.
    assert limited.keys is not None
    as_alice = bearer(await limited.keys.key_for("alice"))
    open_before = _metric_total("exchange_open_streams")
    books = []
    for _ in range(2):
        book = limited.market_data.StreamOrderBook(
            md.StreamOrderBookRequest(instrument=BTC), metadata=as_alice
        )
        assert (await book.read()).HasField("snapshot")  # its slot is held
        books.append(book)
    requests: asyncio.Queue[cmd.StreamPlaceOrdersRequest | None] = asyncio.Queue()
    entry = limited.commands.StreamPlaceOrders(_requests(requests), metadata=as_alice, timeout=60)
    order = limit("alice", BUY, "100", "1")
    await requests.put(cmd.StreamPlaceOrdersRequest(request_id=1, order=order))
    assert (await entry.read()).HasField("placed")
    assert _metric_total("exchange_open_streams") == open_before + 3

    one_more = limited.market_data.StreamTrades(
        md.StreamTradesRequest(instrument=BTC), metadata=as_alice
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await one_more.read()
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "too many open streams" in (refused.value.details() or "")

    # The stream entry ends (the client closes its side; the server answers OK after its
    # handler, which gave the slot back, returned): one slot is free again.
    await requests.put(None)
    assert await entry.code() == grpc.StatusCode.OK
    assert _metric_total("exchange_open_streams") == open_before + 2
    book = limited.market_data.StreamOrderBook(
        md.StreamOrderBookRequest(instrument=BTC), metadata=as_alice
    )
    assert (await book.read()).HasField("snapshot")
    for held in (*books, book):
        held.cancel()


async def test_a_message_over_the_size_cap_is_refused_by_grpc(
    fresh_database_url: str, service_redis_url: str
) -> None:
    settings = service_settings(fresh_database_url, service_redis_url)
    assert settings.max_message_bytes == 64 * 1024  # the default, not raised by the harness
    async with running_exchange(settings) as exchange:
        huge = limit("alice", BUY, "100", "1", client_order_id="x" * (64 * 1024 + 1))
        error = await _refused(exchange.commands.PlaceOrder(huge, timeout=30))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in (error.details() or "")
        # Under the cap, the door's own check answers (the id is too long).
        long = limit("alice", BUY, "100", "1", client_order_id="x" * 60_000)
        error = await _refused(exchange.commands.PlaceOrder(long, timeout=30))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_min_position_wait_is_bounded_by_the_setting_whatever_the_deadline(
    fresh_database_url: str, service_redis_url: str
) -> None:
    settings = service_settings(fresh_database_url, service_redis_url, max_read_wait_s=0.5)
    async with running_exchange(settings) as exchange:
        await exchange.app.projections.stop()  # the views stop here; the log goes on
        placed = await exchange.commands.PlaceOrder(limit("alice", BUY, "100", "1"), timeout=30)
        assert LogPosition.parse(placed.position) is not None
        started = time.monotonic()
        # The views never get there: the wait ends at MAX_READ_WAIT_S,
        # far before the call's deadline.
        error = await _refused(
            exchange.queries.GetOrder(
                query.GetOrderRequest(order_id=placed.order.order_id, min_position=placed.position),
                timeout=60,
            )
        )
        waited = time.monotonic() - started
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0.5 <= waited < 30
