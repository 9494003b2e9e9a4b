"""One trace shows a PlaceOrder end to end: the gRPC call, the append of its request event,
the engine's match (a span started from the event's metadata) and the views applying the
results (projection spans started from the metadata of the events they apply), all with the
trace id of the client's call.

Span names are the convention of docs/operations.md: the gRPC server span
(`/exchange.v1.OrderCommandService/PlaceOrder`), `eventstore.append...`, `engine.<...>`
and `projection.<...>`. The exchange runs in-process (ExchangeApp) so an in-memory exporter
sees every span.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
import redis.asyncio as aioredis
from api_keys import (
    TEST_ADMIN_API_KEY,
    TEST_FUNDING,
    USUAL_ACCOUNTS,
    AccountKeys,
    account_keys_interceptors,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis_urls import redis_url_with_db

from clients.generated.exchange.v1 import order_command_service_pb2 as commands
from clients.generated.exchange.v1 import (
    order_command_service_pb2_grpc,
    order_query_service_pb2_grpc,
)
from clients.generated.exchange.v1 import order_query_service_pb2 as queries
from clients.generated.exchange.v1 import types_pb2 as types
from server.app import ExchangeApp
from server.observability.interceptors import client_interceptors
from server.observability.tracing import get_tracer, tracing_enabled
from server.settings import Settings

# Redis database this test owns (flushed first); the service tests use 11, the live
# Prometheus test 12.
TRACE_TEST_REDIS_DB = 13
PLACE_METHOD = "/exchange.v1.OrderCommandService/PlaceOrder"


@pytest.fixture
async def traced_exchange(
    span_exporter: InMemorySpanExporter, fresh_database_url: str, redis_url: str
) -> AsyncIterator[grpc.aio.Channel]:
    assert tracing_enabled()  # before the app builds its gRPC server and interceptors
    app_redis_url = redis_url_with_db(redis_url, TRACE_TEST_REDIS_DB)
    client = aioredis.from_url(app_redis_url)
    await client.flushdb()
    await client.aclose()
    app = ExchangeApp(
        Settings(
            grpc_host="127.0.0.1",
            grpc_port=0,
            metrics_port=-1,
            http_port=-1,
            database_url=fresh_database_url,
            redis_url=app_redis_url,
            clock_tick_ms=0,
            log_level="WARNING",
            admin_api_key=TEST_ADMIN_API_KEY,
        )
    )
    await app.start()
    target = f"127.0.0.1:{app.grpc_port}"
    keys = AccountKeys(target, TEST_ADMIN_API_KEY, TEST_FUNDING)  # opens nothing until used
    try:
        async with grpc.aio.insecure_channel(
            target, interceptors=[*client_interceptors(), *account_keys_interceptors(keys)]
        ) as channel:
            await keys.prepare(USUAL_ACCOUNTS)
            span_exporter.clear()  # the keys' issuing is not the tests' traces
            yield channel
    finally:
        await keys.close()
        await app.stop(grace_s=0.5)


def _limit(user: str, side: int, price: str, quantity: str) -> commands.PlaceOrderRequest:
    return commands.PlaceOrderRequest(
        user_id=user,
        instrument="BTC-USD",
        side=side,
        type=types.ORDER_TYPE_LIMIT,
        price=price,
        quantity=quantity,
    )


def _names(spans: list[ReadableSpan]) -> list[str]:
    return sorted(span.name for span in spans)


async def test_one_trace_shows_command_append_match_and_view_update(
    traced_exchange: grpc.aio.Channel, spans: InMemorySpanExporter
) -> None:
    place = order_command_service_pb2_grpc.OrderCommandServiceStub(traced_exchange)
    query = order_query_service_pb2_grpc.OrderQueryServiceStub(traced_exchange)
    await place.PlaceOrder(_limit("maker", types.SIDE_SELL, "100.00", "1"), timeout=30)

    with get_tracer().start_as_current_span("trader.buy") as trader:
        placed = await place.PlaceOrder(_limit("taker", types.SIDE_BUY, "100.00", "1"), timeout=30)
    # The engine answers after the append; wait (bounded) until the views show the fill.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        reply = await query.GetOrder(
            queries.GetOrderRequest(order_id=placed.order.order_id, min_position=placed.position),
            timeout=30,
        )
        if reply.order.status == types.ORDER_STATUS_FILLED:
            break
        assert loop.time() < deadline, reply.order
        await asyncio.sleep(0.05)

    trace_id = trader.get_span_context().trace_id
    in_trace = [span for span in spans.get_finished_spans() if span.context.trace_id == trace_id]
    names = _names(in_trace)
    by_id = {span.context.span_id: span for span in in_trace}

    server_spans = [
        span for span in in_trace if span.kind == SpanKind.SERVER and span.name == PLACE_METHOD
    ]
    assert len(server_spans) == 1, names
    appends = [span for span in in_trace if span.name.startswith("eventstore.append")]
    engine = [span for span in in_trace if span.name.startswith("engine.")]
    projection = [span for span in in_trace if span.name.startswith("projection.")]
    assert appends, f"no eventstore.append span in the trace: {names}"
    assert engine, f"no engine span in the trace: {names}"
    assert projection, f"no projection span in the trace: {names}"

    def descends_from_server(span: ReadableSpan) -> bool:
        current: ReadableSpan | None = span
        while current is not None and current.parent is not None:
            if current.parent.span_id == server_spans[0].context.span_id:
                return True
            current = by_id.get(current.parent.span_id)
        return False

    # The append, the engine's and the projections' spans all hang below the PlaceOrder call
    # (the last two through the traceparent in event metadata).
    assert any(descends_from_server(span) for span in appends), names
    assert all(descends_from_server(span) for span in engine + projection), names
