"""Dependency outages end a call with UNAVAILABLE (never UNKNOWN), in one place for every RPC:
which errors count as an outage, and the interceptor on a real grpc.aio server (unary and
server-streaming calls, the metrics' code, one log line per dependency per second)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import grpc.aio
import pytest
import redis.asyncio as aioredis
import redis.exceptions
import structlog
from prometheus_client import REGISTRY

from projections.book_views import NOT_READY, BookViewsNotReady
from server.eventstore.port import EventStoreUnavailable, WrongExpectedVersion
from server.observability.interceptors import server_interceptors
from server.outage_errors import unavailable_reason
from server.servicers.outages import OutageInterceptor, outage_error

SERVICE = "test.v1.Outages"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens on it once the probe is closed


async def postgres_refusal() -> BaseException:
    try:
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres")
    except BaseException as error:
        return error
    raise AssertionError("connected to a closed port")


async def redis_refusal() -> BaseException:
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        await client.get("x")
    except BaseException as error:
        return error
    finally:
        await client.aclose()
    raise AssertionError("connected to a closed port")


async def test_what_counts_as_a_dependency_outage() -> None:
    refused = await postgres_refusal()
    assert isinstance(refused, ConnectionRefusedError)  # what asyncpg raises: a plain OSError
    assert unavailable_reason(refused) == "PostgreSQL is unavailable"
    assert unavailable_reason(await redis_refusal()) == "Redis is unavailable"
    cases: list[tuple[BaseException, str | None]] = [
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), "PostgreSQL"),
        (asyncpg.CannotConnectNowError("the database system is starting up"), "PostgreSQL"),
        (asyncpg.AdminShutdownError("terminating connection"), "PostgreSQL"),
        (asyncpg.InterfaceError("cannot call Pool.acquire(): connection is closed"), "PostgreSQL"),
        (
            asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is"),
            "PostgreSQL",
        ),
        (redis.exceptions.ConnectionError("Connection closed by server."), "Redis"),
        (redis.exceptions.TimeoutError("Timeout reading from socket"), "Redis"),
        (EventStoreUnavailable("event store closed"), "the event store"),
        (BookViewsNotReady(NOT_READY), "the order books are being rebuilt"),
        # Not outages: a refusal, a constraint, a bug.
        (WrongExpectedVersion("s", 0, 1), None),
        (asyncpg.UniqueViolationError("duplicate key"), None),
        (asyncpg.InterfaceError("another operation is in progress"), None),
        (ValueError("bad"), None),
        (KeyError("now"), None),
    ]
    for error, starts in cases:
        reason = unavailable_reason(error)
        if starts is None:
            assert reason is None, error
        else:
            assert reason is not None and reason.startswith(starts), (error, reason)
    # An adapter wrapping the driver's error is seen through.
    try:
        try:
            raise redis.exceptions.ConnectionError("gone")
        except redis.exceptions.ConnectionError as cause:
            raise RuntimeError("could not read the book") from cause
    except RuntimeError as wrapped:
        assert unavailable_reason(wrapped) == "Redis is unavailable"
    # StreamPlaceOrders answers in-stream with the same code.
    answer = outage_error(EventStoreUnavailable("event store closed"))
    assert answer is not None and answer.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert answer.message == "the event store is unavailable; retry"
    assert outage_error(ValueError("bad")) is None


async def _postgres_down(request: bytes, context: Any) -> bytes:
    raise await postgres_refusal()


async def _redis_down(request: bytes, context: Any) -> bytes:
    raise redis.exceptions.ConnectionError("Connection closed by server.")


async def _bug(request: bytes, context: Any) -> bytes:
    raise ValueError("a bug, not an outage")


async def _books_rebuilding(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"snapshot"
    raise BookViewsNotReady(NOT_READY)


def _handlers() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "PostgresDown": grpc.unary_unary_rpc_method_handler(_postgres_down),
            "RedisDown": grpc.unary_unary_rpc_method_handler(_redis_down),
            "Bug": grpc.unary_unary_rpc_method_handler(_bug),
            "BooksRebuilding": grpc.unary_stream_rpc_method_handler(_books_rebuilding),
        },
    )


def _requests(method: str, code: str) -> float:
    labels = {"service": SERVICE, "method": method, "code": code}
    return REGISTRY.get_sample_value("exchange_grpc_requests_total", labels) or 0.0


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    # As server.app wires them: the outage interceptor innermost, under the metrics. Its
    # clock stands still: every call falls within one log interval.
    outages = OutageInterceptor(clock=lambda: 1000.0)
    server = grpc.aio.server(interceptors=[*server_interceptors(), outages])
    server.add_generic_rpc_handlers((_handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as client:
        yield client
    await server.stop(None)


async def test_outages_are_unavailable_with_one_log_line_per_dependency_per_second(
    channel: grpc.aio.Channel,
) -> None:
    before = {
        method: _requests(method, "UNAVAILABLE")
        for method in ("PostgresDown", "RedisDown", "BooksRebuilding")
    }
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await channel.unary_unary(f"/{SERVICE}/PostgresDown")(b"")
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert raised.value.details() == "PostgreSQL is unavailable; retry"
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await channel.unary_unary(f"/{SERVICE}/RedisDown")(b"")
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert raised.value.details() == "Redis is unavailable; retry"
        stream = channel.unary_stream(f"/{SERVICE}/BooksRebuilding")(b"")
        assert await stream.read() == b"snapshot"
        assert await stream.code() == grpc.StatusCode.UNAVAILABLE
        assert await stream.details() == f"{NOT_READY}; retry"

    lines = [line for line in logs if line["event"] == "calls_unavailable"]
    # The first refusal of each dependency is logged; the two more for PostgreSQL within the
    # second are counted into its next line. No stack trace.
    assert [(line["reason"], line["calls"]) for line in lines] == [
        ("PostgreSQL is unavailable", 1),
        ("Redis is unavailable", 1),
        (NOT_READY, 1),
    ]
    assert all("exc_info" not in line and "exception" not in line for line in lines)
    for method in before:
        assert _requests(method, "UNAVAILABLE") == before[method] + 1 + 2 * (
            method == "PostgresDown"
        )


async def test_any_other_error_stays_unknown(channel: grpc.aio.Channel) -> None:
    before = _requests("Bug", "UNKNOWN")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await channel.unary_unary(f"/{SERVICE}/Bug")(b"")
    assert raised.value.code() == grpc.StatusCode.UNKNOWN
    assert _requests("Bug", "UNKNOWN") == before + 1
