"""The service and a real Prometheus (Debian's package) on loopback: after some trading,
every metric a dashboard panel or an alert/recording rule uses exists in Prometheus and
carries data, every rule evaluates without error, and the scrape target is up.

The service runs as `python -m server` (what `make run` and the Docker image run) against a
fresh database; Prometheus runs with ops/prometheus/prometheus.yml, its targets pointed at
the service's loopback metrics port, and the repository's rule files.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
import redis.asyncio as aioredis
import yaml
from api_keys import TEST_ADMIN_API_KEY, account_channel
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from ops_queries import PROMETHEUS_DIR, ROOT, RULE_FILES, used_by_ops
from redis_urls import redis_url_with_db

from clients.generated.exchange.v1 import market_data_service_pb2 as market_data
from clients.generated.exchange.v1 import (
    market_data_service_pb2_grpc,
    order_command_service_pb2_grpc,
    order_query_service_pb2_grpc,
)
from clients.generated.exchange.v1 import order_command_service_pb2 as commands
from clients.generated.exchange.v1 import order_query_service_pb2 as queries
from clients.generated.exchange.v1 import types_pb2 as types

# Redis database this test owns (flushed first); the service tests use 11.
OPS_TEST_REDIS_DB = 12
STARTUP_BOUND_S = 90.0
DATA_BOUND_S = 90.0
INSTRUMENTS = ("BTC-USD", "ETH-USD")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Counters that stay at zero on a healthy exchange: they must exist, not count.
ZERO_IS_DATA = {"exchange_eventstore_append_errors_total", "exchange_consumer_failures_total"}

# Where each series is recorded (server/observability/metrics.py helper), for failure messages.
RECORDED_BY = {
    "exchange_orders_": "engine runner: metrics.record_engine_events (placed: command servicer)",
    "exchange_trade": "engine runner: metrics.record_engine_events",
    "exchange_last_trade_price": "engine runner: metrics.record_engine_events",
    "exchange_engine_": "engine runner: metrics.observe_engine_command / observe_engine_batch",
    "exchange_place_to_ack": "engine runner: metrics.observe_place_to_ack",
    "exchange_place_to_fill": "projections: metrics.observe_place_to_fill_visible",
    "exchange_eventstore_": "event store: metrics.time_append",
    "exchange_queue_length": "group commit / engine input: metrics.set_queue_length",
    "exchange_stream_subscribers": "market-data live feeds: metrics.set_stream_subscribers",
    "exchange_book_": "projections: metrics.observe_book",
    "exchange_consumer_": "engine runner, projections: LagWatcher (observe_lag), "
    "record_consumer_processed, ConsumerFailures (declare, failed)",
}


def recorded_by(name: str) -> str:
    return next((where for prefix, where in RECORDED_BY.items() if name.startswith(prefix)), "?")


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def start(command: list[str], log: Path, env: dict[str, str] | None = None) -> Process:
    with log.open("wb") as output:
        popen = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT, env=env
        )
    return Process(popen, log)


@dataclass
class Service:
    process: Process
    grpc_port: int
    metrics_port: int


@pytest.fixture
async def service(
    fresh_database_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[Service]:
    service_redis_url = redis_url_with_db(redis_url, OPS_TEST_REDIS_DB)
    client = aioredis.from_url(service_redis_url)
    await client.flushdb()
    await client.aclose()
    grpc_port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": fresh_database_url,
        "REDIS_URL": service_redis_url,
        "GRPC_HOST": "127.0.0.1",
        "GRPC_PORT": str(grpc_port),
        "METRICS_PORT": str(metrics_port),
        "HTTP_PORT": "-1",
        "CLOCK_TICK_MS": "200",
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "1",
        "ADMIN_API_KEY": TEST_ADMIN_API_KEY,
        # Load from one host (one limits key): far above a trader's defaults.
        "RATE_LIMIT_PER_S": "1000000",
        "RATE_LIMIT_BURST": "1000000",
        "MAX_STREAMS_PER_KEY": "10000",
    }
    env.pop("EVENT_STORE_URL", None)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    process = start([sys.executable, "-m", "server"], tmp_path / "service.log", env)
    try:
        await wait_serving(process, grpc_port)
        yield Service(process, grpc_port, metrics_port)
    finally:
        process.stop()


async def wait_serving(process: Process, grpc_port: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_BOUND_S
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            assert process.popen.poll() is None, f"service exited:\n{tail(process.log)}"
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            assert loop.time() < deadline, f"service not serving:\n{tail(process.log)}"
            await asyncio.sleep(0.2)


@dataclass
class Prometheus:
    process: Process
    url: str

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as reply:
            body = json.load(reply)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])


def loopback_config(metrics_port: int, prometheus_port: int) -> dict[str, Any]:
    """ops/prometheus/prometheus.yml with loopback targets, 1 s intervals and absolute rule
    file paths; everything else as shipped."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(PROMETHEUS_DIR / path) for path in config["rule_files"]]
    assert sorted(config["rule_files"]) == sorted(str(path) for path in RULE_FILES)
    for job in config["scrape_configs"]:
        port = metrics_port if job["job_name"] == "exchange" else prometheus_port
        job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    return config


@pytest.fixture
def prometheus(service: Service, tmp_path: Path) -> Iterator[Prometheus]:
    executable = shutil.which("prometheus")
    assert executable is not None, (
        "prometheus is missing: apt-get install -y --no-install-recommends prometheus"
    )
    port = free_port()
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(loopback_config(service.metrics_port, port)))
    process = start(
        [
            executable,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        tmp_path / "prometheus.log",
    )
    try:
        yield Prometheus(process, f"http://127.0.0.1:{port}")
    finally:
        process.stop()


def limit(user: str, instrument: str, side: int, price: str, quantity: str, **fields: Any) -> Any:
    return commands.PlaceOrderRequest(
        user_id=user,
        instrument=instrument,
        side=side,
        type=types.ORDER_TYPE_LIMIT,
        price=price,
        quantity=quantity,
        **fields,
    )


async def trade(channel: grpc.aio.Channel) -> None:
    """Every kind of order flow the dashboard shows, on both instruments: resting orders,
    a partial and a full fill, a cancel, an amend, a post-only rejection, a GTD expiry, a
    refused command, queries and a market-data subscriber."""
    place = order_command_service_pb2_grpc.OrderCommandServiceStub(channel)
    query = order_query_service_pb2_grpc.OrderQueryServiceStub(channel)
    market = market_data_service_pb2_grpc.MarketDataServiceStub(channel)
    buy, sell = types.SIDE_BUY, types.SIDE_SELL
    subscription = market.StreamTrades(market_data.StreamTradesRequest(instrument="BTC-USD"))
    expiring: list[str] = []
    position = ""
    for instrument in INSTRUMENTS:
        await place.PlaceOrder(limit("maker", instrument, sell, "100.00", "2"), timeout=30)
        await place.PlaceOrder(limit("maker", instrument, sell, "101.00", "1"), timeout=30)
        await place.PlaceOrder(limit("taker", instrument, buy, "100.00", "1"), timeout=30)
        await place.PlaceOrder(limit("taker", instrument, buy, "100.00", "1"), timeout=30)
        resting = await place.PlaceOrder(limit("bidder", instrument, buy, "99.00", "1"), timeout=30)
        doomed = await place.PlaceOrder(limit("bidder", instrument, buy, "98.00", "1"), timeout=30)
        await place.PlaceOrder(
            limit("shy", instrument, buy, "101.00", "1", post_only=True), timeout=30
        )
        expire = Timestamp()
        expire.FromDatetime(datetime.now(UTC) + timedelta(seconds=1))
        gtd = await place.PlaceOrder(
            limit(
                "patient",
                instrument,
                buy,
                "97.00",
                "1",
                time_in_force=types.TIME_IN_FORCE_GTD,
                expire_time=expire,
            ),
            timeout=30,
        )
        expiring.append(gtd.order.order_id)
        await place.CancelOrder(
            commands.CancelOrderRequest(user_id="bidder", order_id=doomed.order.order_id),
            timeout=30,
        )
        amended = await place.AmendOrder(
            commands.AmendOrderRequest(
                user_id="bidder", order_id=resting.order.order_id, quantity="0.5"
            ),
            timeout=30,
        )
        position = amended.position
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await place.PlaceOrder(limit("bad", "BTC-USD", buy, "1.001", "1"), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    first_trade = await asyncio.wait_for(subscription.read(), 30)
    assert first_trade.trade.instrument == "BTC-USD"
    for instrument in INSTRUMENTS:
        await query.GetOrderBook(
            queries.GetOrderBookRequest(instrument=instrument, depth=10, min_position=position),
            timeout=30,
        )
    # GTD expiry comes with the service clock's ticks.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DATA_BOUND_S
    for order_id in expiring:
        while True:
            reply = await query.GetOrder(queries.GetOrderRequest(order_id=order_id), timeout=30)
            if reply.order.status == types.ORDER_STATUS_EXPIRED:
                break
            assert loop.time() < deadline, f"GTD order {order_id} did not expire"
            await asyncio.sleep(0.2)
    subscription.cancel()


def series_without_data(prometheus: Prometheus, names: set[str]) -> list[str]:
    """The names Prometheus has no sample for; counters and histogram counts must also have
    counted something."""
    missing = []
    for name in sorted(names):
        result = prometheus.query(f"sum({name})")
        if not result:
            missing.append(name)
        elif (
            name.endswith(("_total", "_count", "_bucket"))
            and name not in ZERO_IS_DATA
            and float(result[0]["value"][1]) <= 0
        ):
            missing.append(f"{name} (zero)")
    return missing


async def test_every_metric_in_the_dashboard_and_rules_has_data(
    service: Service, prometheus: Prometheus
) -> None:
    async with account_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        await trade(channel)

    used = used_by_ops()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DATA_BOUND_S
    missing = series_without_data(prometheus, used)
    while missing and loop.time() < deadline:
        assert prometheus.process.popen.poll() is None, tail(prometheus.process.log)
        await asyncio.sleep(1)
        missing = series_without_data(prometheus, used)
    assert missing == [], "no data in Prometheus for:\n" + "\n".join(
        f"  {name}  <- {recorded_by(name)}" for name in missing
    )

    # A target's health reads "unknown" until its first scrape: wait (bounded) for both.
    while True:
        targets = prometheus.api("targets")["activeTargets"]
        health = {target["labels"]["job"]: target["health"] for target in targets}
        if "unknown" not in health.values() or loop.time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert health == {"exchange": "up", "prometheus": "up"}
    # Likewise a rule's health is "unknown" until its first evaluation.
    while True:
        rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        if all(rule["health"] != "unknown" for rule in rules) or loop.time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert len(rules) == sum(
        len(group["rules"])
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
    )
    assert {rule["name"]: rule["health"] for rule in rules if rule["health"] != "ok"} == {}
    firing = prometheus.query('ALERTS{alertstate="firing"}')
    assert firing == []
    # Recording rules run on their own schedule: wait (bounded) for the fulfilment rate.
    while True:
        fulfilment = prometheus.query("exchange:order_fulfilment_ratio:rate5m")
        instruments = {sample["metric"]["instrument"] for sample in fulfilment}
        if instruments == set(INSTRUMENTS) or loop.time() > deadline:
            break
        await asyncio.sleep(1)
    assert instruments == set(INSTRUMENTS)
