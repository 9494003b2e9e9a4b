"""A real exchange for the HTTP tests that drive it from outside (schemathesis, a browser):
``python -m server``, as ``make run`` starts it, in a child process on a fresh database and
a clean Redis database, with trade keys for a few accounts.

These tests are synchronous (schemathesis and Playwright's sync API run their own loops),
so the exchange runs in another process rather than on the test's event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import redis
from api_keys import TEST_ADMIN_API_KEY, TEST_FUNDING, bearer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis_urls import redis_url_with_db

from clients.generated.exchange.v1 import admin_service_pb2 as admin
from clients.generated.exchange.v1 import admin_service_pb2_grpc as admin_grpc

ROOT = Path(__file__).resolve().parents[2]
HTTP_TEST_REDIS_DB = 15
STARTUP_BOUND_S = 60.0


async def _execute(admin_url: str, statement: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _admin_sql(admin_url: str, statement: str) -> None:
    """Run one statement from synchronous code, even beside a running loop (Playwright's
    sync API keeps one on this thread): on a thread of its own."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _execute(admin_url, statement)).result()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LiveExchange:
    http_url: str
    grpc_target: str
    log: Path
    _keys: dict[str, str] = field(default_factory=dict)

    def key_for(self, user_id: str, scopes: tuple[int, ...] = (admin.SCOPE_TRADE,)) -> str:
        """A key of the account (issued once per account), the account funded with
        TEST_FUNDING (balance checks are on by default)."""
        if user_id not in self._keys:
            with grpc.insecure_channel(self.grpc_target) as channel:
                stub = admin_grpc.AdminServiceStub(channel)
                issued = stub.IssueApiKey(
                    admin.IssueApiKeyRequest(user_id=user_id, scopes=list(scopes)),
                    metadata=bearer(TEST_ADMIN_API_KEY),
                    timeout=30,
                )
                for asset, amount in sorted(TEST_FUNDING.items()):
                    stub.Deposit(
                        admin.DepositRequest(
                            user_id=user_id,
                            asset=asset,
                            amount=amount,
                            transfer_id=f"funding-{asset}-{issued.key_id}",
                        ),
                        metadata=bearer(TEST_ADMIN_API_KEY),
                        timeout=60,
                    )
            self._keys[user_id] = issued.api_key
        return self._keys[user_id]


def _wait_serving(process: subprocess.Popen[bytes], target: str, log: Path) -> None:
    """Block until the service says SERVING (its health watch; HTTP is up before that)."""
    with grpc.insecure_channel(target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=STARTUP_BOUND_S, wait_for_ready=True
        )
        try:
            for reply in watch:
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    watch.cancel()
                    return
        except grpc.RpcError as error:
            raise AssertionError(
                f"service not serving ({error}); exit code {process.poll()}:\n"
                + log.read_text()[-3000:]
            ) from error


@contextlib.contextmanager
def running_server(service_urls: Any, log_dir: Path) -> Iterator[LiveExchange]:
    name = f"exchange_http_{uuid.uuid4().hex[:12]}"
    admin_url = service_urls.database_url
    _admin_sql(admin_url, f'CREATE DATABASE "{name}"')
    database_url = urlunsplit(urlsplit(admin_url)._replace(path="/" + name))
    redis_url = redis_url_with_db(service_urls.redis_url, HTTP_TEST_REDIS_DB)
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
    grpc_port, http_port = free_port(), free_port()
    log = log_dir / "service.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LISTEN_HOST": "127.0.0.1",
        "GRPC_PORT": str(grpc_port),
        "HTTP_PORT": str(http_port),
        "METRICS_PORT": "-1",
        "CLOCK_TICK_MS": "200",
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "1",
        "ADMIN_API_KEY": TEST_ADMIN_API_KEY,
        "ADMIN_API_KEY_FILE": "",
        "RATE_LIMIT_PER_S": "1000000",
        "RATE_LIMIT_BURST": "1000000",
    }
    env.pop("EVENT_STORE_URL", None)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "server"],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )
    try:
        target = f"127.0.0.1:{grpc_port}"
        _wait_serving(process, target, log)
        yield LiveExchange(f"http://127.0.0.1:{http_port}", target, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        _admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
