"""End-to-end service benchmark: the real server (``python -m server``) over loopback gRPC.

Prints, each beside the rate of a no-op unary call (``DiagnosticsService.Ping``) measured in
the same run on the same machine:
- PlaceOrder orders/s from concurrent unary clients;
- StreamPlaceOrders orders/s (each answered once durably appended), also beside the no-op
  streaming baseline (``DiagnosticsService.StreamPing``, same streams and window): what the
  gRPC transport alone carries here, answering each request;
- place-to-fill-visible latency p50/p99 at paced rates (by default 100 orders/s, which the
  pipeline sustains on a 2-core machine, then the issue's 1k/s): from sending a crossing
  order to its trade arriving on a StreamTrades subscription (the trade is published once
  the views hold it);
- last, on a second server with the engine and the views switched off, PlaceOrder and
  StreamPlaceOrders again: the command side alone, a ceiling the downstream work only lowers
  (skipped with --skip-front-only, or when --server-env is given).

The server runs in its own process against DATABASE_URL / REDIS_URL (embedded servers when
unset), in a fresh database created and dropped here. ``python -m bench service --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import grpc
import psutil
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients.account_keys import AccountKeys, keyed_channel
from clients.generated.exchange.v1 import diagnostics_service_pb2 as diagnostics
from clients.generated.exchange.v1 import diagnostics_service_pb2_grpc as diagnostics_grpc
from clients.generated.exchange.v1 import market_data_service_pb2 as market_data
from clients.generated.exchange.v1 import market_data_service_pb2_grpc as market_data_grpc
from clients.generated.exchange.v1 import order_command_service_pb2 as commands
from clients.generated.exchange.v1 import order_command_service_pb2_grpc as commands_grpc
from clients.generated.exchange.v1 import order_query_service_pb2 as query
from clients.generated.exchange.v1 import order_query_service_pb2_grpc as query_grpc
from clients.generated.exchange.v1 import types_pb2 as types
from server.commands import order_id_for
from server.settings import Settings

REPO = Path(__file__).resolve().parent.parent

# Issue #16's targets for this machine, printed beside the figures with MET / NOT MET.
PLACE_VS_PING_TARGET = 0.5  # PlaceOrder at least this share of Ping's rate
STREAM_ENTRY_TARGET = 5000.0  # orders/s streamed, durable, matched and projected
CPU_PER_ORDER_TARGET_MS = 0.2  # service processes + PostgreSQL, per order, end to end
FILL_VISIBLE_P99_TARGET_MS = 50.0  # place-to-fill-visible p99 at 1k orders/s offered
FILL_VISIBLE_TARGET_RATE = 1000.0


def verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"


BENCH_REDIS_DB = 12
INSTRUMENT = "BTC-USD"
# The latency run trades another instrument: its trade feed carries only the timed trades.
LATENCY_INSTRUMENT = "ETH-USD"
MAX_PAIRS_IN_FLIGHT = 200
# Every RPC needs an API key: the bench's server runs with this admin key, and the bench's
# channels call as each order's account (clients.account_keys), keys issued up front.
BENCH_ADMIN_API_KEY = secrets.token_urlsafe(32)
BENCH_ACCOUNTS = (
    *(f"bench-{n}" for n in range(50)),
    *(f"maker-{n}" for n in range(20)),
    *(f"taker-{n}" for n in range(20)),
    "bench-marker",
)
# Balance checks are on by default: each account is funded when its key is issued, far
# beyond what its orders cost, so they are matched as without accounts (holds and
# settlement are measured, never an INSUFFICIENT_FUNDS refusal).
BENCH_FUNDING = {"BTC": "1000000", "ETH": "1000000", "USD": "10000000000"}
_keys_by_target: dict[str, AccountKeys] = {}


def _channel(target: str) -> grpc.aio.Channel:
    """A channel to the bench's server whose calls carry their account's key."""
    return keyed_channel(target, _keys_by_target[target])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


def _redis_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str(db)
        return urlunsplit(parts._replace(query=urlencode(query)))
    return urlunsplit(parts._replace(path=f"/{db}"))


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Server:
    """``python -m server`` in a child process, on a fresh database."""

    def __init__(
        self, admin_database_url: str, redis_url: str, extra_env: dict[str, str] | None = None
    ) -> None:
        self.extra_env = extra_env or {}
        self._admin_url = admin_database_url
        self._redis_url = _redis_with_db(redis_url, BENCH_REDIS_DB)
        self._database = f"bench_service_{uuid.uuid4().hex[:10]}"
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> Server:
        connection = await asyncpg.connect(self._admin_url)
        try:
            await connection.execute(f'CREATE DATABASE "{self._database}"')
        finally:
            await connection.close()
        redis = aioredis.from_url(self._redis_url)
        await redis.flushdb()
        await redis.aclose()
        env = {
            **os.environ,
            "DATABASE_URL": _with_database(self._admin_url, self._database),
            "REDIS_URL": self._redis_url,
            "GRPC_HOST": "127.0.0.1",
            "GRPC_PORT": str(self.port),
            "METRICS_PORT": "-1",
            "HTTP_PORT": "-1",
            "LOG_LEVEL": "WARNING",
            "ADMIN_API_KEY": BENCH_ADMIN_API_KEY,
            # Load from one host (one limits key): far above a trader's defaults.
            "RATE_LIMIT_PER_S": "1000000",
            "RATE_LIMIT_BURST": "1000000",
            "MAX_STREAMS_PER_KEY": "10000",
            **self.extra_env,
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", "server"], cwd=REPO, env=env, stderr=subprocess.DEVNULL
        )
        await self._wait_serving()
        settings = Settings.from_env(env)
        # Funding waits for the engine and the views: a front-only server has neither
        # (and with accounts off there is nothing to fund).
        funded = settings.accounts_enabled and settings.engine_enabled
        funded = funded and settings.projections_enabled
        self.keys = AccountKeys(self.target, BENCH_ADMIN_API_KEY, BENCH_FUNDING if funded else None)
        _keys_by_target[self.target] = self.keys
        await self.keys.prepare(BENCH_ACCOUNTS)
        return self

    def cpu_seconds(self) -> tuple[float, float, float]:
        """CPU seconds used so far by the server with its children (e.g. the engine
        process), by its main process alone, and by the PostgreSQL backends connected to its
        database: a cost per order that, unlike a rate, does not depend much on what else the
        machine is running."""
        assert self._process is not None
        server = psutil.Process(self._process.pid)
        service = main = 0.0
        for process in (server, *server.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                service += times.user + times.system
                if process is server:
                    main = times.user + times.system
        database = 0.0
        for process in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if self._database in " ".join(process.info["cmdline"] or ()):
                    times = process.cpu_times()
                    database += times.user + times.system
        return service, main, database

    async def _wait_serving(self) -> None:
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            async with asyncio.timeout(60):
                while True:
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        # types-grpcio-health-checking's HealthStub declares none of its methods.
                        answer = await stub.Check(  # type: ignore[attr-defined]
                            health_pb2.HealthCheckRequest(), timeout=1
                        )
                        if answer.status == health_pb2.HealthCheckResponse.SERVING:
                            return
                    assert self._process is not None and self._process.poll() is None, (
                        "server exited"
                    )
                    await asyncio.sleep(0.2)

    async def __aexit__(self, *exc_info: object) -> None:
        if self.target in _keys_by_target:
            await _keys_by_target.pop(self.target).close()
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        connection = await asyncpg.connect(self._admin_url)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{self._database}" WITH (FORCE)')
        finally:
            await connection.close()


def _order(
    sequence: int, user_count: int = 50, user: str | None = None
) -> commands.PlaceOrderRequest:
    """Limit orders alternating sides around 100.00: about half rest, half cross."""
    side = types.SIDE_BUY if sequence % 2 == 0 else types.SIDE_SELL
    offset = (sequence * 7919) % 11 - 5  # -5..+5 ticks
    return commands.PlaceOrderRequest(
        user_id=user or f"bench-{sequence % user_count}",
        instrument=INSTRUMENT,
        side=side,
        type=types.ORDER_TYPE_LIMIT,
        price=f"{100 + offset / 100:.2f}",
        quantity="0.0100",
    )


async def _unary_rate(
    target: str,
    calls: int,
    concurrency: int,
    make_call: Callable[[Any, int], Coroutine[Any, Any, Any]],
    stub_of: Callable[[grpc.aio.Channel], Any],
) -> float:
    """Calls per second of `make_call` from `concurrency` tasks over a few channels."""
    channels = [_channel(target) for _ in range(min(4, concurrency))]
    stubs = [stub_of(channel) for channel in channels]
    counter = itertools.count()

    async def worker(index: int) -> None:
        stub = stubs[index % len(stubs)]
        while (sequence := next(counter)) < calls:
            await make_call(stub, sequence)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    for channel in channels:
        await channel.close()
    return calls / elapsed


async def ping_rate(target: str, calls: int, concurrency: int) -> float:
    request = diagnostics.PingRequest()

    async def call(stub: Any, _sequence: int) -> None:
        await stub.Ping(request)

    return await _unary_rate(
        target, calls, concurrency, call, diagnostics_grpc.DiagnosticsServiceStub
    )


async def place_rate(target: str, orders: int, concurrency: int, offset: int) -> float:
    async def call(stub: Any, sequence: int) -> None:
        await stub.PlaceOrder(_order(offset + sequence))

    return await _unary_rate(
        target, orders, concurrency, call, commands_grpc.OrderCommandServiceStub
    )


async def _stream_rate(
    target: str,
    count: int,
    streams: int,
    window: int,
    open_stream: Callable[[grpc.aio.Channel, AsyncIterator[Any]], AsyncIterable[Any]],
    request: Callable[[int], Any],
    accepted: Callable[[Any], bool],
) -> float:
    """Requests/s through a bidirectional stream answering each request, on `streams`
    channels with `window` unanswered requests each; every answer must be `accepted`."""
    per_stream = count // streams

    async def one_stream(index: int) -> None:
        async with _channel(target) as channel:
            slots = asyncio.Semaphore(window)

            async def requests() -> AsyncIterator[Any]:
                base = index * per_stream
                for number in range(per_stream):
                    await slots.acquire()
                    yield request(base + number)

            answered = 0
            async for answer in open_stream(channel, requests()):
                assert accepted(answer), answer
                answered += 1
                slots.release()
            assert answered == per_stream

    started = time.perf_counter()
    await asyncio.gather(*(one_stream(i) for i in range(streams)))
    return per_stream * streams / (time.perf_counter() - started)


async def stream_ping_rate(target: str, count: int, streams: int, window: int) -> float:
    """The no-op baseline of `stream_rate`: StreamPing in the same shape."""
    return await _stream_rate(
        target,
        count,
        streams,
        window,
        lambda channel, requests: diagnostics_grpc.DiagnosticsServiceStub(channel).StreamPing(
            requests
        ),
        lambda number: diagnostics.StreamPingRequest(request_id=number),
        lambda answer: True,
    )


async def stream_rate(target: str, orders: int, streams: int, window: int, offset: int) -> float:
    """Orders/s through StreamPlaceOrders, `window` unanswered requests per stream."""
    return await _stream_rate(
        target,
        orders,
        streams,
        window,
        lambda channel, requests: commands_grpc.OrderCommandServiceStub(channel).StreamPlaceOrders(
            requests
        ),
        # One account per stream (a stream acts for its key's account): stream i's
        # requests are numbers i * per_stream ... (i + 1) * per_stream - 1.
        lambda number: commands.StreamPlaceOrdersRequest(
            request_id=number,
            order=_order(offset + number, user=f"bench-{number // max(1, orders // streams)}"),
        ),
        lambda answer: answer.WhichOneof("result") == "placed",
    )


async def place_to_fill(
    target: str, rate: float, pairs: int, run: int = 0
) -> tuple[float, float, float]:
    """Latency (s) from sending a crossing order to its trade on StreamTrades: p50, p99, and
    the achieved order rate. A maker rests first (not timed), then a taker crosses it."""
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()
    async with _channel(target) as channel:
        orders = commands_grpc.OrderCommandServiceStub(channel)
        feed = market_data_grpc.MarketDataServiceStub(channel).StreamTrades(
            market_data.StreamTradesRequest(instrument=LATENCY_INSTRUMENT)
        )

        async def watch() -> None:
            async for message in feed:
                started = sent_at.pop(message.trade.taker_order_id, None)
                if started is not None:
                    latencies.append(time.perf_counter() - started)
                    if len(latencies) == pairs:
                        done.set()
                        return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)  # let the subscription register before the first trade
        interval = 2 / rate  # two orders per pair
        tasks: set[asyncio.Task[None]] = set()
        # A server slower than the pace makes the sender wait here instead of piling up calls.
        in_flight = asyncio.Semaphore(MAX_PAIRS_IN_FLIGHT)

        async def pair(number: int) -> None:
            async with in_flight:
                await place_pair(number)

        async def place_pair(number: int) -> None:
            price = f"{200 + (number % 50) / 100:.2f}"
            maker = commands.PlaceOrderRequest(
                user_id=f"maker-{number % 20}",
                instrument=LATENCY_INSTRUMENT,
                side=types.SIDE_SELL,
                type=types.ORDER_TYPE_LIMIT,
                price=price,
                quantity="0.010",
            )
            await orders.PlaceOrder(maker)
            # A client_order_id makes the order id known before the call (no race with
            # a trade that arrives before the answer).
            # Ids of this run's own: a repeated client_order_id would be an idempotent retry.
            taker_user, client_order_id = f"taker-{number % 20}", f"t{run}-{number}"
            # The taker buys through any price: with a maker placed before each taker, the
            # book always holds one for it, so every taker fills (in the engine's order).
            taker = commands.PlaceOrderRequest(
                user_id=taker_user,
                client_order_id=client_order_id,
                instrument=LATENCY_INSTRUMENT,
                side=types.SIDE_BUY,
                type=types.ORDER_TYPE_LIMIT,
                price="999999.00",
                quantity="0.010",
                time_in_force=types.TIME_IN_FORCE_IOC,
            )
            sent_at[order_id_for(taker_user, client_order_id)] = time.perf_counter()
            await orders.PlaceOrder(taker)

        first = time.perf_counter()
        for number in range(pairs):
            task = asyncio.create_task(pair(number))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(max(0.0, first + (number + 1) * interval - time.perf_counter()))
        await asyncio.gather(*list(tasks))
        achieved = 2 * pairs / (time.perf_counter() - first)
        async with asyncio.timeout(60):
            await done.wait()
        watcher.cancel()
        feed.cancel()
    return statistics.median(latencies), _percentile(latencies, 0.99), achieved


async def drain(target: str, views: bool = True) -> None:
    """Wait until the engine and the views have handled everything placed so far: place a
    marker order and wait until the views show the engine's answer to it. With the views
    off (a front-only run) there is nothing to wait for."""
    if not views:
        return
    async with _channel(target) as channel:
        orders = commands_grpc.OrderCommandServiceStub(channel)
        queries = query_grpc.OrderQueryServiceStub(channel)
        marker = await orders.PlaceOrder(
            commands.PlaceOrderRequest(
                user_id="bench-marker",
                instrument=INSTRUMENT,
                side=types.SIDE_BUY,
                type=types.ORDER_TYPE_LIMIT,
                price="1.00",
                quantity="0.0001",
            )
        )
        async with asyncio.timeout(600):
            while True:
                answer = await queries.GetOrder(
                    query.GetOrderRequest(
                        order_id=marker.order.order_id, min_position=marker.position
                    ),
                    timeout=60,
                )
                if answer.order.status != types.ORDER_STATUS_PENDING:
                    return
                await asyncio.sleep(0.2)


async def run(arguments: argparse.Namespace) -> None:
    from server.embedded import resolve_service_urls

    urls = resolve_service_urls()
    extra_env = dict(item.split("=", 1) for item in arguments.server_env)
    views = Settings.from_env({**os.environ, **extra_env}).projections_enabled
    async with Server(urls.database_url, urls.redis_url, extra_env) as server:
        target = server.target
        concurrency = arguments.concurrency
        await ping_rate(target, 500, concurrency)  # warm up both sides
        ping = await ping_rate(target, arguments.calls, concurrency)
        print(f"no-op Ping (unary):                {ping:9,.0f} calls/s  ({concurrency} clients)")
        stream_ping = await stream_ping_rate(
            target, arguments.stream_orders, streams=2, window=arguments.window
        )
        print(f"no-op StreamPing (2 streams):      {stream_ping:9,.0f} answers/s")
        place = await place_rate(target, arguments.orders, concurrency, offset=0)
        print(
            f"PlaceOrder (unary):                {place:9,.0f} orders/s "
            f"= {place / ping:.0%} of Ping (target >= {PLACE_VS_PING_TARGET:.0%}: "
            f"{verdict(place / ping >= PLACE_VS_PING_TARGET)})"
        )
        await drain(target, views)  # the engine and views finish the unary orders first
        service_before, main_before, database_before = server.cpu_seconds()
        stream_started = time.perf_counter()
        streamed = await stream_rate(
            target, arguments.stream_orders, streams=2, window=arguments.window, offset=10**6
        )
        print(
            f"StreamPlaceOrders (2 streams):     {streamed:9,.0f} orders/s "
            f"= {streamed / ping:.0%} of Ping, {streamed / stream_ping:.0%} of StreamPing"
        )
        await drain(target, views)  # the whole pipeline's work for the streamed orders
        # Until the last streamed order is matched and in the views (drain polls every
        # 0.2 s, so this errs low by at most that).
        entry = arguments.stream_orders / (time.perf_counter() - stream_started)
        print(
            f"streaming entry, durable, matched and projected: {entry:9,.0f} orders/s "
            f"(target >= {STREAM_ENTRY_TARGET:,.0f}: {verdict(entry >= STREAM_ENTRY_TARGET)})"
        )
        service_after, main_after, database_after = server.cpu_seconds()
        per_order = 1000 / arguments.stream_orders
        service_ms = (service_after - service_before) * per_order
        database_ms = (database_after - database_before) * per_order
        total_ms = service_ms + database_ms
        print(
            "CPU per streamed order, end to end: "
            f"service {service_ms:.2f} ms "
            f"(main process {(main_after - main_before) * per_order:.2f} ms), "
            f"PostgreSQL {database_ms:.2f} ms, total {total_ms:.2f} ms "
            f"(target <= {CPU_PER_ORDER_TARGET_MS} ms: "
            f"{verdict(total_ms <= CPU_PER_ORDER_TARGET_MS)})"
        )
        if not arguments.skip_latency:
            await latency_runs(target, arguments, ping)
    if not arguments.skip_front_only and extra_env == {}:
        await front_only(urls.database_url, urls.redis_url, arguments)


# The command side with nothing behind it: what PlaceOrder and StreamPlaceOrders cost
# without the engine and the views, the ceiling any work downstream can only lower.
FRONT_ONLY_ENV = {"ENGINE_ENABLED": "0", "PROJECTIONS_ENABLED": "0"}


async def front_only(database_url: str, redis_url: str, arguments: argparse.Namespace) -> None:
    async with Server(database_url, redis_url, FRONT_ONLY_ENV) as server:
        target = server.target
        concurrency = arguments.concurrency
        await ping_rate(target, 500, concurrency)
        ping = await ping_rate(target, arguments.calls, concurrency)
        stream_ping = await stream_ping_rate(
            target, arguments.stream_orders, streams=2, window=arguments.window
        )
        place = await place_rate(target, arguments.orders, concurrency, offset=0)
        streamed = await stream_rate(
            target, arguments.stream_orders, streams=2, window=arguments.window, offset=10**6
        )
        print(
            "command side alone (engine and views off): "
            f"PlaceOrder {place:,.0f} orders/s = {place / ping:.0%} of Ping ({ping:,.0f}), "
            f"StreamPlaceOrders {streamed:,.0f} orders/s = {streamed / stream_ping:.0%} of "
            f"StreamPing ({stream_ping:,.0f})"
        )


async def latency_runs(target: str, arguments: argparse.Namespace, ping: float) -> None:
    for run, rate in enumerate(arguments.rate):
        # About five seconds of pairs at each pace (two orders per pair), at most --pairs.
        pairs = max(1, min(arguments.pairs, int(rate * 2.5)))
        p50, p99, achieved = await place_to_fill(target, rate, pairs, run)
        goal = ""
        if rate == FILL_VISIBLE_TARGET_RATE:
            met = p99 * 1000 < FILL_VISIBLE_P99_TARGET_MS
            goal = f"; target p99 < {FILL_VISIBLE_P99_TARGET_MS:.0f} ms: {verdict(met)}"
        print(
            f"place-to-fill-visible at {achieved:,.0f} orders/s (asked {rate:,.0f}): "
            f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms  (Ping {ping:,.0f} calls/s)"
            f"{goal}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench service", description=__doc__)
    parser.add_argument("--calls", type=int, default=5000, help="Ping calls")
    parser.add_argument("--orders", type=int, default=3000, help="PlaceOrder calls")
    parser.add_argument("--stream-orders", type=int, default=10000)
    parser.add_argument("--window", type=int, default=500, help="in-flight per stream")
    parser.add_argument("--concurrency", type=int, default=32, help="unary client tasks")
    parser.add_argument(
        "--rate",
        type=float,
        nargs="+",
        default=[100.0, 1000.0],
        help="orders/s for latency, one run each (a pace the pipeline sustains here, then "
        "the issue's 1k/s)",
    )
    parser.add_argument("--pairs", type=int, default=1500, help="maker/taker pairs timed")
    parser.add_argument(
        "--server-env", nargs="*", default=[], metavar="NAME=VALUE", help="server settings"
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument(
        "--skip-front-only",
        action="store_true",
        help="skip the last run, the command side alone (engine and views off); it is also "
        "skipped when --server-env is given",
    )
    arguments = parser.parse_args(argv)
    asyncio.run(run(arguments))


if __name__ == "__main__":
    main(sys.argv[1:])
