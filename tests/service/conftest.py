"""A whole exchange per test: ExchangeApp on a loopback port, its own database, clean Redis.

Each test gets an empty log (a fresh database) and an empty Redis database, so books,
trades and engine state never leak between tests. The clock is off: tests move engine
time by appending ClockTicked events themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from service_harness import (
    SERVICE_TEST_REDIS_DB,
    Exchange,
    redis_url_with_db,
    running_exchange,
    service_settings,
)


@pytest.fixture
async def service_redis_url(redis_url: str) -> AsyncIterator[str]:
    url = redis_url_with_db(redis_url, SERVICE_TEST_REDIS_DB)
    client = aioredis.from_url(url)
    await client.flushdb()
    await client.aclose()
    yield url


@pytest.fixture
async def exchange(fresh_database_url: str, service_redis_url: str) -> AsyncIterator[Exchange]:
    async with running_exchange(service_settings(fresh_database_url, service_redis_url)) as ex:
        yield ex
