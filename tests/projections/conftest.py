"""Fixtures for the read side: a fresh log (PostgreSQL event store), a pool on the same
database for the views, and a Redis key prefix of the test's own (removed afterwards)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from projections.redis_views import drop_redis_views
from server.eventstore import EventStore, open_event_store


@pytest.fixture
async def event_store(fresh_database_url: str) -> AsyncIterator[EventStore]:
    store = await open_event_store(fresh_database_url)
    yield store
    await store.close()


@pytest.fixture
async def pg_pool(fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(fresh_database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def key_prefix(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    prefix = f"test-projections:{uuid.uuid4().hex[:10]}:"
    yield prefix
    await drop_redis_views(redis_client, prefix)
