"""The composition root: settings -> adapters -> services -> gRPC and HTTP servers, started
and stopped.

Everything the service runs is wired here and nowhere else: the event store, the
PostgreSQL pool and Redis client of the views, the command handlers, the engine runner,
the clock, the projection builders and live feeds, the use cases both transports call
(order commands and queries, the limits), the gRPC servicers (with health and reflection),
the HTTP API and web page, and the metrics endpoint. ``python -m server`` and the tests
use ``ExchangeApp``.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import grpc
import redis.asyncio as aioredis
import structlog
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from clients.generated.exchange.v1 import (
    account_service_pb2,
    account_service_pb2_grpc,
    admin_service_pb2,
    admin_service_pb2_grpc,
    diagnostics_service_pb2,
    diagnostics_service_pb2_grpc,
    market_data_service_pb2,
    market_data_service_pb2_grpc,
    order_command_service_pb2,
    order_command_service_pb2_grpc,
    order_query_service_pb2,
    order_query_service_pb2_grpc,
)
from domain.instruments import Instrument
from projections.runner import ProjectionRunner
from server.accounts_mode import check_accounts_mode
from server.clock import Clock
from server.commands import CommandHandlers
from server.engine_process import EngineProcess
from server.engine_runner import EngineRunner, read_progress
from server.eventstore import open_event_store
from server.eventstore.port import EventStore
from server.http.api import HttpApi
from server.http.door import Door
from server.http.events import EventStreams
from server.http.server import HttpServer, build_application
from server.identity.admin import ApiKeyAdmin
from server.identity.keyring import KeyRing, KeyRingFollower
from server.instrument_config import VenueConfig, load_venue_for
from server.limits.interceptor import LimitInterceptor
from server.limits.stream_slots import StreamSlots
from server.limits.token_bucket import RateLimiter
from server.money_commands import MoneyCommands
from server.observability import metrics
from server.observability.consumer_failures import ConsumerFailures
from server.observability.interceptors import server_interceptors
from server.observability.logging import configure_logging
from server.observability.tracing import configure_tracing
from server.order_commands import OrderCommands
from server.order_reads import OrderReads, ReadYourWrites
from server.outcomes import OutcomeWaiter
from server.pg_pools import keep_session
from server.readiness import Readiness
from server.servicers.accounts import AccountServicer, AdminMoney, Transfers
from server.servicers.admin import AdminServicer
from server.servicers.auth import AuthInterceptor
from server.servicers.commands import OrderCommandServicer
from server.servicers.diagnostics import DiagnosticsServicer
from server.servicers.market_data import MarketDataServicer
from server.servicers.outages import OutageInterceptor
from server.servicers.queries import OrderQueryServicer
from server.settings import Settings
from server.transport_security import server_credentials

log = structlog.get_logger(__name__)

SERVICE_NAMES = (
    order_command_service_pb2.DESCRIPTOR.services_by_name["OrderCommandService"].full_name,
    order_query_service_pb2.DESCRIPTOR.services_by_name["OrderQueryService"].full_name,
    market_data_service_pb2.DESCRIPTOR.services_by_name["MarketDataService"].full_name,
    diagnostics_service_pb2.DESCRIPTOR.services_by_name["DiagnosticsService"].full_name,
)
# Balances and transfers (issue 14): reflected; its health is the read side's and the
# engine's, which SERVICE_NAMES report.
ACCOUNT_SERVICE_NAME = account_service_pb2.DESCRIPTOR.services_by_name["AccountService"].full_name
# Answers from the key ring only (no view, no engine): not in SERVICE_NAMES' readiness.
ADMIN_SERVICE_NAME = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
# What each side's health depends on (server/readiness.py): the views, and the engine.
READ_SIDE_SERVICES = SERVICE_NAMES[1:3]
COMMAND_SIDE_SERVICES = SERVICE_NAMES[:1]
# Longest wait for one shutdown step before giving up on it.
STOP_BOUND_S = 10.0
GRPC_OPTIONS = (
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_permit_without_calls", 1),
)


def event_store_backend(url: str) -> str:
    """The event-store label of the metrics: ``postgresql`` or ``kurrentdb``."""
    return "postgresql" if urlsplit(url).scheme.startswith("postgres") else "kurrentdb"


def service_version() -> str:
    """The version of the installed package (pyproject.toml's); "unknown" when the code runs
    from a checkout that was never installed."""
    try:
        return importlib.metadata.version("exchange-core")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def load_runtime_settings() -> Settings:
    """Settings from the environment, with embedded servers for unset URLs."""
    from server.embedded import resolve_service_urls

    settings = Settings.from_env()
    if settings.database_url and settings.redis_url:
        return settings
    urls = resolve_service_urls()
    return settings.with_urls(urls.database_url, urls.redis_url)


def configure_process(settings: Settings) -> None:
    """Logging, tracing and the garbage collector, once per process."""
    configure_logging(settings.log_level, settings.log_json)
    configure_tracing("exchange")
    configure_garbage_collector()


GC_GEN0_THRESHOLD = 50_000


def configure_garbage_collector() -> None:
    """Every order allocates thousands of short-lived objects (protobufs, dicts, events)
    and almost no reference cycles: with the default gen-0 threshold (700) the collector
    ran several times per order and took ~6% of the server's CPU under load."""
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)


@dataclass
class ExchangeApp:
    """The running service; ``start()`` then ``stop()``."""

    settings: Settings
    instruments: dict[str, Instrument] = field(default_factory=dict)
    venue: VenueConfig | None = None
    event_store: EventStore | None = None
    pg_pool: asyncpg.Pool | None = None
    redis: aioredis.Redis | None = None
    handlers: CommandHandlers | None = None
    engine_runner: EngineRunner | None = None
    engine_child: EngineProcess | None = None
    clock: Clock | None = None
    projections: ProjectionRunner | None = None
    grpc_server: grpc.aio.Server | None = None
    health: Any = None
    # Consumers stopped at an event they cannot apply; drives `readiness`.
    failures: ConsumerFailures = field(default_factory=ConsumerFailures)
    readiness: Readiness | None = None
    grpc_port: int = 0
    metrics_port: int | None = None
    key_ring: KeyRing | None = None
    key_ring_follower: KeyRingFollower | None = None
    rate_limiter: RateLimiter | None = None
    stream_slots: StreamSlots | None = None
    order_commands: OrderCommands | None = None
    order_reads: OrderReads | None = None
    http_server: HttpServer | None = None
    http_port: int = 0

    async def start(self) -> None:
        """Open the adapters, bind the gRPC port (failing fast), then start every worker."""
        settings = self.settings
        # First: a bootstrap key too short refuses the start before anything is opened.
        self.key_ring = KeyRing(settings.admin_api_key)
        self.venue = load_venue_for(settings)
        self.instruments = self.venue.instruments
        self.event_store = await open_event_store(settings.resolved_event_store_url)
        # A log written in the other accounts mode refuses the start (AccountsModeMismatch).
        progress = await read_progress(self.event_store, settings.engine_shard)
        await check_accounts_mode(self.event_store, settings.accounts_enabled, progress.last_input)
        # Every key in the log is known before the first call is served.
        self.key_ring_follower = KeyRingFollower(self.event_store, self.key_ring)
        await self.key_ring_follower.load()
        self.key_ring_follower.start()
        backend = event_store_backend(settings.resolved_event_store_url)
        metrics.set_build_info(service_version(), event_store=backend)
        self.handlers = CommandHandlers(self.event_store, self.instruments, backend=backend)
        self.pg_pool = await asyncpg.create_pool(
            settings.database_url, min_size=2, max_size=10, reset=keep_session
        )
        self.redis = aioredis.from_url(settings.redis_url)
        self.projections = ProjectionRunner(
            self.event_store,
            self.pg_pool,
            self.redis,
            failures=self.failures,
            retry_max_s=settings.consumer_retry_max_s,
            lag_check_s=settings.consumer_lag_check_s,
        )
        if settings.engine_enabled and settings.engine_process:
            # Spawned before gRPC starts its threads (forking beside them is not clean).
            self.engine_child = EngineProcess(settings)
            await self.engine_child.start()
        self._build_use_cases()
        server = self._build_grpc_server()
        address = f"{settings.grpc_host}:{settings.grpc_port}"
        credentials = server_credentials(settings)
        try:
            if credentials is None:
                self.grpc_port = server.add_insecure_port(address)
            else:
                self.grpc_port = server.add_secure_port(address, credentials)
        except RuntimeError as error:
            raise RuntimeError(f"cannot listen on {address} (GRPC_PORT): {error}") from error
        if settings.engine_enabled and not settings.engine_process:
            self.engine_runner = EngineRunner(
                self.event_store,
                self.instruments,
                shard=settings.engine_shard,
                batch_max=settings.engine_batch_max,
                snapshot_every=settings.snapshot_every,
                closed_order_memory=settings.closed_order_memory,
                backend=backend,
                failures=self.failures,
                retry_max_s=settings.consumer_retry_max_s,
                lag_check_s=settings.consumer_lag_check_s,
                assets=self.venue.assets if settings.accounts_enabled else None,
            )
            self.engine_runner.start()
        if settings.clock_tick_ms > 0:
            self.clock = Clock(self.event_store, settings.clock_tick_ms / 1000)
            self.clock.start()
        if settings.projections_enabled:
            await self.projections.start()
        else:
            # The builders run elsewhere (or not yet), but the query RPCs read these tables:
            # with them in place a query answers (NOT_FOUND, empty, or a wait for
            # min_position) instead of failing on a missing table.
            await self.projections.postgres_builder.migrate()
        await server.start()
        self.grpc_server = server
        if settings.http_port >= 0:
            self.http_server = self._build_http_server()
            await self.http_server.start()
            self.http_port = self.http_server.port
        # SERVING, except the services that depend on a consumer stuck at an event.
        self.readiness = Readiness(
            self.health, self.failures, SERVICE_NAMES, READ_SIDE_SERVICES, COMMAND_SIDE_SERVICES
        )
        await self.readiness.publish()
        self.readiness.start()
        if settings.metrics_port >= 0:
            self.metrics_port = metrics.start_metrics_server(
                settings.metrics_port, addr=settings.metrics_host
            )
        log.info(
            "exchange_started",
            grpc_port=self.grpc_port,
            http_port=self.http_port if self.http_server is not None else None,
            metrics_port=self.metrics_port,
            instruments=sorted(self.instruments),
        )

    def _build_use_cases(self) -> None:
        """What both transports call: the order commands and queries, and one budget per
        key for the whole server (gRPC's interceptor, StreamPlaceOrders and HTTP)."""
        assert self.handlers is not None and self.projections is not None
        projections, settings = self.projections, self.settings
        self.rate_limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        self.stream_slots = StreamSlots(settings.max_streams_per_key)
        self.order_commands = OrderCommands(
            self.handlers,
            OutcomeWaiter(projections.event_store, projections.progress, self.failures),
            settings.query_wait_default_s,
        )
        self.order_reads = OrderReads(
            projections.order_views,
            projections.book_views,
            ReadYourWrites(
                projections.progress,
                projections.event_store,
                settings.query_wait_default_s,
                self.failures,
                max_wait_s=settings.max_read_wait_s,
            ),
            self.instruments,
        )

    def _build_http_server(self) -> HttpServer:
        assert self.projections is not None and self.key_ring is not None
        assert self.rate_limiter is not None and self.stream_slots is not None
        assert self.order_commands is not None and self.order_reads is not None
        settings = self.settings
        streams = EventStreams(
            self.projections.live,
            self.projections.trades_after,
            self.instruments,
            self.stream_slots,
        )
        application = build_application(
            HttpApi(self.order_commands, self.order_reads, streams),
            Door(self.key_ring, settings.public_market_data, self.rate_limiter),
            service_version(),
        )
        return HttpServer(application, settings.http_host, settings.http_port)

    def _build_grpc_server(self) -> grpc.aio.Server:
        assert self.handlers is not None and self.projections is not None
        assert self.key_ring is not None and self.event_store is not None
        assert self.rate_limiter is not None and self.stream_slots is not None
        assert self.order_commands is not None and self.order_reads is not None
        projections, settings = self.projections, self.settings
        rate_limiter = self.rate_limiter
        limits = LimitInterceptor(rate_limiter, self.stream_slots)
        # The key check first (the limits count per key); the outage mapping innermost, so
        # the metrics count a dependency outage as the UNAVAILABLE it becomes; the metrics
        # outermost, so they count refused calls by status too.
        interceptors = [
            *server_interceptors(),
            AuthInterceptor(self.key_ring, settings.public_market_data),
            limits,
            OutageInterceptor(),
        ]
        options = (*GRPC_OPTIONS, ("grpc.max_receive_message_length", settings.max_message_bytes))
        server = grpc.aio.server(interceptors=interceptors, options=options)
        waiter = OutcomeWaiter(projections.event_store, projections.progress, self.failures)
        read_your_writes = ReadYourWrites(
            projections.progress,
            projections.event_store,
            self.settings.query_wait_default_s,
            self.failures,
            max_wait_s=self.settings.max_read_wait_s,
        )
        assert self.venue is not None
        money = MoneyCommands(
            self.event_store,
            self.instruments,
            self.venue.assets if settings.accounts_enabled else None,
            backend=event_store_backend(settings.resolved_event_store_url),
        )
        transfers = Transfers(money, waiter, settings.query_wait_default_s)
        order_command_service_pb2_grpc.add_OrderCommandServiceServicer_to_server(
            OrderCommandServicer(self.order_commands, rate_limiter=rate_limiter), server
        )
        order_query_service_pb2_grpc.add_OrderQueryServiceServicer_to_server(
            OrderQueryServicer(self.order_reads, projections.balance_views), server
        )
        market_data_service_pb2_grpc.add_MarketDataServiceServicer_to_server(
            MarketDataServicer(projections.live, self.instruments, projections.trades_after),
            server,
        )
        diagnostics_service_pb2_grpc.add_DiagnosticsServiceServicer_to_server(
            DiagnosticsServicer(), server
        )
        admin_service_pb2_grpc.add_AdminServiceServicer_to_server(
            AdminServicer(
                ApiKeyAdmin(self.event_store, self.key_ring), AdminMoney(transfers, waiter)
            ),
            server,
        )
        account_service_pb2_grpc.add_AccountServiceServicer_to_server(
            AccountServicer(
                transfers, projections.balance_views, projections.live, read_your_writes
            ),
            server,
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                ADMIN_SERVICE_NAME,
                ACCOUNT_SERVICE_NAME,
                health.SERVICE_NAME,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        return server

    async def stop(self, grace_s: float = 2.0) -> None:
        """Stop accepting calls, finish in-flight ones, then stop the workers and adapters.

        Each step is bounded: a component that does not stop in time is logged and left
        behind, so Ctrl-C always ends the process.
        """
        if self.health is not None:
            await _bounded("health", self.health.enter_graceful_shutdown())
        if self.readiness is not None:
            await _bounded("readiness", self.readiness.stop())
        if self.projections is not None:
            # End server streams first so the gRPC grace period is not spent waiting on them.
            self.projections.live.close()
        if self.http_server is not None:
            await _bounded("http", self.http_server.stop(), grace_s + STOP_BOUND_S)
        if self.grpc_server is not None:
            await _bounded("grpc", self.grpc_server.stop(grace_s), grace_s + STOP_BOUND_S)
        if self.clock is not None:
            await _bounded("clock", self.clock.stop())
        if self.key_ring_follower is not None:
            await _bounded("key_ring", self.key_ring_follower.stop())
        if self.engine_runner is not None:
            await _bounded("engine_runner", self.engine_runner.stop())
        if self.engine_child is not None:
            await _bounded("engine_process", self.engine_child.stop())
        if self.projections is not None and self.settings.projections_enabled:
            await _bounded("projections", self.projections.stop())
        if self.redis is not None:
            await _bounded("redis", self.redis.aclose())
        if self.pg_pool is not None:
            await _bounded("views_pool", self.pg_pool.close())
        if self.event_store is not None:
            await _bounded("event_store", self.event_store.close())
        log.info("exchange_stopped")


async def _bounded(name: str, step: Awaitable[Any], bound_s: float = STOP_BOUND_S) -> None:
    """Run one shutdown step for at most `bound_s` seconds (never hang the shutdown)."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=bound_s)
    if not done:
        log.error("stop_step_timed_out", step=name, bound_s=bound_s)
        return
    if task.exception() is not None:
        log.error("stop_step_failed", step=name, error=repr(task.exception()))
