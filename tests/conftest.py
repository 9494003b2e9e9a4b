"""Shared fixtures: real PostgreSQL and Redis, configured or embedded.

With `DATABASE_URL` / `REDIS_URL` set (CI) the tests use those servers; without them they
start embedded ones (server/embedded.py). They never skip for want of a server. Each test
session works in a database of its own, created here and dropped at the end, so runs never
see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from server.embedded import resolve_service_urls


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(scope="session")
def service_urls():  # type: ignore[no-untyped-def]
    return resolve_service_urls()


async def create_database(admin_url: str, name: str) -> str:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return _with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
async def database_url(service_urls) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """A database of this test session's own, dropped afterwards."""
    name = f"exchange_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = await create_database(service_urls.database_url, name)
    yield url
    await drop_database(service_urls.database_url, name)


@pytest.fixture
async def fresh_database_url(service_urls) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """A brand-new empty database for one test (for tests that need an empty log)."""
    name = f"exchange_t_{uuid.uuid4().hex[:12]}"
    url = await create_database(service_urls.database_url, name)
    yield url
    await drop_database(service_urls.database_url, name)


@pytest.fixture(scope="session")
def redis_url(service_urls) -> Iterator[str]:  # type: ignore[no-untyped-def]
    yield service_urls.redis_url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


def pytest_report_header(config: pytest.Config) -> list[str]:
    database = os.environ.get("DATABASE_URL") or "embedded PostgreSQL (DATABASE_URL unset)"
    redis_target = os.environ.get("REDIS_URL") or "embedded Redis (REDIS_URL unset)"
    kurrent = os.environ.get("KURRENTDB_URI") or "not set: KurrentDB contract runs will skip"
    return [f"postgres: {database}", f"redis: {redis_target}", f"kurrentdb: {kurrent}"]
