"""The metrics interceptor counts every call by service, method and status code, on a real
grpc.aio server over loopback (bytes in, bytes out: no proto needed): a call is counted as
what ended it, so a caller's deadline or cancellation and a subscriber dropped for lagging
are not server errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from prometheus_client import REGISTRY

from clients.generated.exchange.v1 import market_data_service_pb2 as market_data
from clients.generated.exchange.v1 import market_data_service_pb2_grpc as market_data_grpc
from projections.live import LiveFeeds
from projections.views import BUY, BookUpdate, LevelChange
from server.instrument_config import load_instruments
from server.observability.interceptors import server_interceptors, split_method
from server.servicers.market_data import MarketDataServicer

SERVICE = "test.v1.Probe"


async def _echo(request: bytes, context: Any) -> bytes:
    return request


async def _refuse(request: bytes, context: Any) -> bytes:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad")
    return b""


async def _crash(request: bytes, context: Any) -> bytes:
    raise RuntimeError("boom")


async def _set_code(request: bytes, context: Any) -> bytes:
    context.set_code(grpc.StatusCode.NOT_FOUND)
    return b""


async def _count_to(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for number in range(int(request)):
        yield str(number).encode()


# Set by _wait_forever when a call reaches it (the test and the server share one loop).
_waiting_started = asyncio.Event()


async def _wait_forever(request: bytes, context: Any) -> bytes:
    _waiting_started.set()
    await asyncio.Event().wait()
    return b""


async def _flood(request: bytes, context: Any) -> AsyncIterator[bytes]:
    """Writes until the caller stops reading, then waits in a write (flow control)."""
    while True:
        yield b"x" * 65536


def _handlers() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(_echo),
            "Refuse": grpc.unary_unary_rpc_method_handler(_refuse),
            "Crash": grpc.unary_unary_rpc_method_handler(_crash),
            "SetCode": grpc.unary_unary_rpc_method_handler(_set_code),
            "CountTo": grpc.unary_stream_rpc_method_handler(_count_to),
            "WaitForever": grpc.unary_unary_rpc_method_handler(_wait_forever),
            "Flood": grpc.unary_stream_rpc_method_handler(_flood),
        },
    )


def _requests(method: str, code: str, service: str = SERVICE) -> float:
    value = REGISTRY.get_sample_value(
        "exchange_grpc_requests_total", {"service": service, "method": method, "code": code}
    )
    return value or 0.0


def _requests_by_code(method: str, service: str = SERVICE) -> dict[str, float]:
    return {code.name: _requests(method, code.name, service) for code in grpc.StatusCode}


def _increase(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {code: after[code] - before[code] for code in after if after[code] != before[code]}


@pytest.fixture
async def server() -> AsyncIterator[tuple[grpc.aio.Server, grpc.aio.Channel]]:
    server = grpc.aio.server(interceptors=server_interceptors())
    server.add_generic_rpc_handlers((_handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as client:
        yield server, client
    await server.stop(None)


@pytest.fixture
async def channel(server: tuple[grpc.aio.Server, grpc.aio.Channel]) -> grpc.aio.Channel:
    return server[1]


def test_split_method() -> None:
    assert split_method("/exchange.v1.OrderCommandService/PlaceOrder") == (
        "exchange.v1.OrderCommandService",
        "PlaceOrder",
    )


async def test_counts_each_status_code(channel: grpc.aio.Channel) -> None:
    before = {
        ("Echo", "OK"): _requests("Echo", "OK"),
        ("Refuse", "INVALID_ARGUMENT"): _requests("Refuse", "INVALID_ARGUMENT"),
        ("Crash", "UNKNOWN"): _requests("Crash", "UNKNOWN"),
        ("SetCode", "NOT_FOUND"): _requests("SetCode", "NOT_FOUND"),
    }
    assert await channel.unary_unary(f"/{SERVICE}/Echo")(b"hi") == b"hi"
    assert await channel.unary_unary(f"/{SERVICE}/Echo")(b"again") == b"again"
    for method, expected in (
        ("Refuse", grpc.StatusCode.INVALID_ARGUMENT),
        ("Crash", grpc.StatusCode.UNKNOWN),
        ("SetCode", grpc.StatusCode.NOT_FOUND),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await channel.unary_unary(f"/{SERVICE}/{method}")(b"")
        assert raised.value.code() == expected

    assert _requests("Echo", "OK") - before[("Echo", "OK")] == 2
    assert _requests("Refuse", "INVALID_ARGUMENT") - before[("Refuse", "INVALID_ARGUMENT")] == 1
    assert _requests("Crash", "UNKNOWN") - before[("Crash", "UNKNOWN")] == 1
    assert _requests("SetCode", "NOT_FOUND") - before[("SetCode", "NOT_FOUND")] == 1
    labels = {"service": SERVICE, "method": "Echo"}
    assert REGISTRY.get_sample_value("exchange_grpc_requests_in_flight", labels) == 0
    count = REGISTRY.get_sample_value("exchange_grpc_request_duration_seconds_count", labels)
    assert count is not None and count >= 2


async def test_counts_stream_messages(channel: grpc.aio.Channel) -> None:
    labels = {"service": SERVICE, "method": "CountTo"}
    sent_before = REGISTRY.get_sample_value("exchange_grpc_stream_messages_sent_total", labels)
    ok_before = _requests("CountTo", "OK")
    received = [message async for message in channel.unary_stream(f"/{SERVICE}/CountTo")(b"5")]
    assert received == [b"0", b"1", b"2", b"3", b"4"]
    sent_after = REGISTRY.get_sample_value("exchange_grpc_stream_messages_sent_total", labels)
    assert sent_after - (sent_before or 0.0) == 5
    assert _requests("CountTo", "OK") - ok_before == 1


async def test_a_callers_deadline_or_cancel_is_not_a_server_error(
    server: tuple[grpc.aio.Server, grpc.aio.Channel],
) -> None:
    grpc_server, channel = server
    unary_before = _requests_by_code("WaitForever")
    stream_before = _requests_by_code("Flood")

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await channel.unary_unary(f"/{SERVICE}/WaitForever")(b"", timeout=0.2)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    _waiting_started.clear()
    waiting = channel.unary_unary(f"/{SERVICE}/WaitForever")(b"", timeout=30)
    await asyncio.wait_for(_waiting_started.wait(), 10)
    waiting.cancel()
    # A stream whose caller stops reading: the handler waits inside a write when the
    # deadline passes, and again when the caller cancels.
    flood = channel.unary_stream(f"/{SERVICE}/Flood")(b"", timeout=0.3)
    await flood.read()
    assert await flood.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    flood = channel.unary_stream(f"/{SERVICE}/Flood")(b"", timeout=30)
    await flood.read()
    flood.cancel()
    await grpc_server.stop(grace=5)  # returns once every handler has finished

    assert _increase(unary_before, _requests_by_code("WaitForever")) == {
        "DEADLINE_EXCEEDED": 1,
        "CANCELLED": 1,
    }
    assert _increase(stream_before, _requests_by_code("Flood")) == {
        "DEADLINE_EXCEEDED": 1,
        "CANCELLED": 1,
    }


MARKET_DATA = "exchange.v1.MarketDataService"


async def test_a_subscriber_dropped_for_lagging_is_counted_aborted() -> None:
    live = LiveFeeds(subscriber_buffer=2)
    instruments = load_instruments(Path(__file__).parents[2] / "server" / "instruments.json")
    grpc_server = grpc.aio.server(interceptors=server_interceptors())
    market_data_grpc.add_MarketDataServiceServicer_to_server(
        MarketDataServicer(live, instruments), grpc_server
    )
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    await grpc_server.start()
    before = _requests_by_code("StreamOrderBook", MARKET_DATA)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = market_data_grpc.MarketDataServiceStub(channel)
            call = stub.StreamOrderBook(
                market_data.StreamOrderBookRequest(instrument="BTC-USD"), timeout=30
            )
            first = await call.read()
            assert first.HasField("snapshot")  # subscribed: the feed now buffers for it
            # More updates than its buffer holds, published before it can read any.
            for sequence in range(1, 5):
                change = LevelChange(BUY, Decimal(100 + sequence), Decimal(1), 1)
                live.publish_book_update(BookUpdate("BTC-USD", sequence, (change,), ""))
            assert await call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "resubscribe" in await call.details()
    finally:
        await grpc_server.stop(grace=5)
    assert _increase(before, _requests_by_code("StreamOrderBook", MARKET_DATA)) == {
        "RESOURCE_EXHAUSTED": 1
    }
