"""The metrics interceptor counts every call by service, method and status code, on a real
grpc.aio server over loopback (bytes in, bytes out: no proto needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from prometheus_client import REGISTRY

from server.observability.interceptors import server_interceptors, split_method

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


def _handlers() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(_echo),
            "Refuse": grpc.unary_unary_rpc_method_handler(_refuse),
            "Crash": grpc.unary_unary_rpc_method_handler(_crash),
            "SetCode": grpc.unary_unary_rpc_method_handler(_set_code),
            "CountTo": grpc.unary_stream_rpc_method_handler(_count_to),
        },
    )


def _requests(method: str, code: str) -> float:
    value = REGISTRY.get_sample_value(
        "exchange_grpc_requests_total", {"service": SERVICE, "method": method, "code": code}
    )
    return value or 0.0


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=server_interceptors())
    server.add_generic_rpc_handlers((_handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as client:
        yield client
    await server.stop(None)


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
