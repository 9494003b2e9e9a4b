"""The service tests' harness: a running ExchangeApp with stubs, and waiting for results."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
from api_keys import TEST_ADMIN_API_KEY, TEST_FUNDING, USUAL_ACCOUNTS, AccountKeys, keyed_channel
from redis_urls import redis_url_with_db as redis_url_with_db  # re-exported to the tests

from clients.generated.exchange.v1 import (
    diagnostics_service_pb2_grpc,
    market_data_service_pb2_grpc,
    order_command_service_pb2_grpc,
    order_query_service_pb2_grpc,
)
from server.app import ExchangeApp
from server.eventstore.port import LogPosition
from server.settings import Settings

# Redis database the service tests own (FLUSHDB'd before each test).
SERVICE_TEST_REDIS_DB = 11
SETTLE_BOUND_S = 60.0


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


@dataclass
class Exchange:
    """A running exchange and stubs on a channel to it."""

    app: ExchangeApp
    channel: grpc.aio.Channel
    commands: order_command_service_pb2_grpc.OrderCommandServiceStub
    queries: order_query_service_pb2_grpc.OrderQueryServiceStub
    market_data: market_data_service_pb2_grpc.MarketDataServiceStub
    diagnostics: diagnostics_service_pb2_grpc.DiagnosticsServiceStub
    # The keys the channel attaches (tests/api_keys.py); None only for a hand-made Exchange.
    keys: AccountKeys | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.app.grpc_port}"

    @property
    def http_url(self) -> str:
        """The base URL of the HTTP API and web page."""
        return f"http://127.0.0.1:{self.app.http_port}"

    async def settle(self, position_token: str) -> None:
        """Wait until the engine handled the write at `position_token` and the views hold
        its results (bounded; not a timing assertion)."""
        runner = self.app.engine_runner
        assert runner is not None
        await asyncio.wait_for(
            runner.wait_processed(LogPosition.parse(position_token)), SETTLE_BOUND_S
        )
        if runner.last_result_position is not None:
            reached = await self.app.projections.progress.wait_for(
                runner.last_result_position, SETTLE_BOUND_S
            )
            assert reached, "views did not catch up"


@contextlib.asynccontextmanager
async def running_exchange(
    settings: Settings,
    kind: type[Exchange] = Exchange,
    funding: dict[str, str] | None = TEST_FUNDING,
) -> AsyncIterator[Exchange]:
    """An ExchangeApp started with `settings` (and the test admin key, unless they name
    one), and stubs on a channel that calls as each request's account (funded with
    `funding` when its key is issued); both closed (and the app stopped) on the way
    out."""
    if not settings.admin_api_key:
        settings = replace(settings, admin_api_key=TEST_ADMIN_API_KEY)
    app = ExchangeApp(settings)
    try:
        await app.start()
    except BaseException:
        await app.stop(grace_s=0.5)  # what started before the failure (e.g. the key ring)
        raise
    target = f"127.0.0.1:{app.grpc_port}"
    keys = AccountKeys(target, settings.admin_api_key, funding=funding)
    channel = keyed_channel(target, keys)
    try:
        await keys.prepare(USUAL_ACCOUNTS)
        await _views_caught_up(app)
        yield kind(
            app=app,
            channel=channel,
            commands=order_command_service_pb2_grpc.OrderCommandServiceStub(channel),
            queries=order_query_service_pb2_grpc.OrderQueryServiceStub(channel),
            market_data=market_data_service_pb2_grpc.MarketDataServiceStub(channel),
            diagnostics=diagnostics_service_pb2_grpc.DiagnosticsServiceStub(channel),
            keys=keys,
        )
    finally:
        await channel.close()
        await keys.close()
        await app.stop(grace_s=0.5)


async def _views_caught_up(app: ExchangeApp) -> None:
    """Wait (bounded) until the views hold the log as it is (the keys just issued): a
    test's first book read must not meet the books still being built at start."""
    assert app.event_store is not None and app.projections is not None
    head = await app.event_store.last_committed_position()
    if head is not None:
        reached = await app.projections.progress.wait_for(head, SETTLE_BOUND_S)
        assert reached, "the views did not catch up with the log at start"


async def create_database(admin_url: str) -> tuple[str, str]:
    name = f"exchange_svc_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return name, with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def service_settings(database_url: str, redis_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "metrics_port": -1,
        "http_port": 0,
        "database_url": database_url,
        "redis_url": redis_url,
        "clock_tick_ms": 0,
        # In process, so tests can wait on the runner (test_runtime_e2e covers the child).
        "engine_process": False,
        "snapshot_every": 25,
        "log_json": True,
        "log_level": "WARNING",
        "admin_api_key": TEST_ADMIN_API_KEY,
        # Every test client shares one limits key (127.0.0.1): the load tests need more
        # than a trader's defaults. Tests of the limits set their own.
        "rate_limit_per_s": 1_000_000.0,
        "rate_limit_burst": 1_000_000,
        "max_streams_per_key": 10_000,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
