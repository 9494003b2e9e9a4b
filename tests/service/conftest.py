"""A whole exchange per test: ExchangeApp on a loopback port, its own database, clean Redis.

Each test gets an empty log (a fresh database) and an empty Redis database, so books,
trades and engine state never leak between tests. The clock is off: tests move engine
time by appending ClockTicked events themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import redis.asyncio as aioredis
from service_harness import (
    SERVICE_TEST_REDIS_DB,
    Exchange,
    redis_url_with_db,
    service_settings,
)

from clients.generated.exchange.v1 import (
    diagnostics_service_pb2_grpc,
    market_data_service_pb2_grpc,
    order_command_service_pb2_grpc,
    order_query_service_pb2_grpc,
)
from server.app import ExchangeApp


@pytest.fixture
async def service_redis_url(redis_url: str) -> AsyncIterator[str]:
    url = redis_url_with_db(redis_url, SERVICE_TEST_REDIS_DB)
    client = aioredis.from_url(url)
    await client.flushdb()
    await client.aclose()
    yield url


@pytest.fixture
async def exchange(fresh_database_url: str, service_redis_url: str) -> AsyncIterator[Exchange]:
    app = ExchangeApp(service_settings(fresh_database_url, service_redis_url))
    await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}")
    try:
        yield Exchange(
            app=app,
            channel=channel,
            commands=order_command_service_pb2_grpc.OrderCommandServiceStub(channel),
            queries=order_query_service_pb2_grpc.OrderQueryServiceStub(channel),
            market_data=market_data_service_pb2_grpc.MarketDataServiceStub(channel),
            diagnostics=diagnostics_service_pb2_grpc.DiagnosticsServiceStub(channel),
        )
    finally:
        await channel.close()
        await app.stop(grace_s=0.5)
