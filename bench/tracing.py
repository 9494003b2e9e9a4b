"""What tracing costs: PlaceOrder through `python -m server` with tracing off and on.

Runs the service twice on loopback against a fresh database each time: once as shipped
(tracing off), once with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP sink in this
process (tracing on, every span exported over OTLP/gRPC and dropped). Each run places the
same crossing orders from concurrent clients and reports throughput, the service's CPU
time per order and PlaceOrder latency percentiles.

    .venv/bin/python -m bench.tracing [--orders 3000] [--concurrency 32]

Uses DATABASE_URL / REDIS_URL when set, else the embedded servers (server/embedded.py).
`make bench` runs it as `python -m bench tracing`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import grpc.aio
import psutil
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from clients.account_keys import account_channel
from clients.generated.exchange.v1 import (
    order_command_service_pb2 as commands,
)
from clients.generated.exchange.v1 import order_command_service_pb2_grpc
from clients.generated.exchange.v1 import types_pb2 as types
from server.embedded import resolve_service_urls

ROOT = Path(__file__).resolve().parent.parent

REDIS_DB = 15
STARTUP_BOUND_S = 90.0


class SpanSink(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace collector that counts spans and keeps nothing."""

    def __init__(self) -> None:
        self.spans = 0

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.spans += len(scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@dataclass
class RunResult:
    mode: str
    orders: int
    seconds: float
    cpu_seconds: float
    latencies: list[float]
    spans: int

    def row(self) -> str:
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
        return (
            f"{self.mode:12s} {self.orders / self.seconds:8.0f} orders/s  "
            f"{self.cpu_seconds / self.orders * 1e6:7.0f} us service CPU/order  "
            f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  spans exported {self.spans}"
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return url + ("&" if parts.query else "?") + f"db={db}"
    return urlunsplit(parts._replace(path=f"/{db}"))


# Every RPC needs an API key: the server runs with this admin key, and the orders go
# through a channel calling as each order's account (clients.account_keys).
ADMIN_API_KEY = secrets.token_urlsafe(32)


def _order(index: int) -> commands.PlaceOrderRequest:
    # Alternate sells and buys at one price so every pair trades (engine + views work too).
    side = types.SIDE_SELL if index % 2 == 0 else types.SIDE_BUY
    return commands.PlaceOrderRequest(
        user_id=f"user-{index % 2}",
        instrument="BTC-USD",
        side=side,
        type=types.ORDER_TYPE_LIMIT,
        price="100.00",
        quantity="0.01",
    )


async def _wait_serving(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_BOUND_S
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("the service exited during start-up")
            try:
                # types-grpcio-health-checking's HealthStub declares none of its methods.
                reply = await stub.Check(  # type: ignore[attr-defined]
                    health_pb2.HealthCheckRequest(), timeout=2
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the service did not start")


async def _place_all(port: int, orders: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    next_index = 0
    async with account_channel(f"127.0.0.1:{port}", ADMIN_API_KEY) as channel:
        stub = order_command_service_pb2_grpc.OrderCommandServiceStub(channel)
        for index in range(200):  # warm-up (issues the two accounts' keys too)
            await stub.PlaceOrder(_order(index), timeout=30)

        async def worker() -> None:
            nonlocal next_index
            while next_index < orders:
                index = next_index
                next_index += 1
                started = time.perf_counter()
                await stub.PlaceOrder(_order(index), timeout=30)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


async def run_once(
    mode: str, admin_url: str, redis_url: str, sink_port: int | None, orders: int, concurrency: int
) -> tuple[float, float, list[float]]:
    name = f"exchange_tracing_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(admin_url)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    client = aioredis.from_url(_with_redis_db(redis_url, REDIS_DB))
    await client.flushdb()
    await client.aclose()
    grpc_port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _with_database(admin_url, name),
        "REDIS_URL": _with_redis_db(redis_url, REDIS_DB),
        "GRPC_HOST": "127.0.0.1",
        "GRPC_PORT": str(grpc_port),
        "METRICS_PORT": "-1",
        "HTTP_PORT": "-1",
        "LOG_LEVEL": "WARNING",
        "ADMIN_API_KEY": ADMIN_API_KEY,
        # Load from one host (one limits key): far above a trader's defaults.
        "RATE_LIMIT_PER_S": "1000000",
        "RATE_LIMIT_BURST": "1000000",
        "MAX_STREAMS_PER_KEY": "10000",
    }
    env.pop("EVENT_STORE_URL", None)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    if sink_port is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink_port}"
        env["OTEL_EXPORTER_OTLP_INSECURE"] = "true"
    process = subprocess.Popen(
        [sys.executable, "-m", "server"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await _wait_serving(grpc_port, process)
        service = psutil.Process(process.pid)
        cpu_before = sum(service.cpu_times()[:2])
        seconds, latencies = await _place_all(grpc_port, orders, concurrency)
        cpu_seconds = sum(service.cpu_times()[:2]) - cpu_before
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        connection = await asyncpg.connect(admin_url)
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()
    return seconds, cpu_seconds, latencies


async def run(orders: int, concurrency: int) -> list[RunResult]:
    urls = resolve_service_urls()
    sink = SpanSink()
    sink_server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, sink_server)
    sink_port = sink_server.add_insecure_port("127.0.0.1:0")
    await sink_server.start()
    results = []
    try:
        for mode, port in (("tracing off", None), ("tracing on", sink_port)):
            spans_before = sink.spans
            seconds, cpu_seconds, latencies = await run_once(
                mode, urls.database_url, urls.redis_url, port, orders, concurrency
            )
            await asyncio.sleep(1.0)  # the batch exporter flushes on shutdown
            results.append(
                RunResult(mode, orders, seconds, cpu_seconds, latencies, sink.spans - spans_before)
            )
    finally:
        await sink_server.stop(None)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    print(
        f"PlaceOrder x {args.orders}, {args.concurrency} concurrent clients, "
        "python -m server on loopback",
        flush=True,
    )
    results = asyncio.run(run(args.orders, args.concurrency))
    for result in results:
        print(result.row(), flush=True)
    off, on = results
    print(
        f"tracing on: {on.orders / on.seconds / (off.orders / off.seconds):.0%} of the "
        f"tracing-off throughput, "
        f"{on.cpu_seconds / on.orders / (off.cpu_seconds / off.orders):.2f}x CPU per order"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
