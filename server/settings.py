"""Every setting of the service, read from environment variables with defaults, in one place.

| Variable | Default | Meaning |
|---|---|---|
| `LISTEN_HOST` | `127.0.0.1` | address every listener binds (`0.0.0.0`: every interface) |
| `GRPC_HOST` | `LISTEN_HOST` | address the gRPC server binds |
| `GRPC_PORT` | `50051` | gRPC port (0 picks a free port) |
| `GRPC_TLS_CERT_FILE` | unset | PEM certificate chain: with `GRPC_TLS_KEY_FILE`, gRPC speaks TLS |
| `GRPC_TLS_KEY_FILE` | unset | PEM private key of that certificate |
| `GRPC_TLS_CLIENT_CA_FILE` | unset | PEM CA bundle: clients must show a cert it signed (mTLS) |
| `HTTP_HOST` | `LISTEN_HOST` | address the HTTP API and web page bind |
| `HTTP_PORT` | `8080` | HTTP API, live feeds and web page port (0 picks a free port, -1 disables) |
| `METRICS_HOST` | `LISTEN_HOST` | address the `/metrics` endpoint binds |
| `METRICS_PORT` | `9464` | Prometheus `/metrics` HTTP port (0 picks a free port, -1 disables) |
| `RATE_LIMIT_PER_S` | `100` | commands per second per key (token bucket refill) |
| `RATE_LIMIT_BURST` | `200` | commands a key may send at once (token bucket size) |
| `MAX_STREAMS_PER_KEY` | `20` | open streaming calls per key |
| `MAX_MESSAGE_BYTES` | `65536` | largest request message gRPC accepts |
| `MAX_READ_WAIT_S` | `30` | longest wait for `min_position`, whatever the deadline |
| `DATABASE_URL` | embedded PostgreSQL | event store and PostgreSQL views |
| `REDIS_URL` | embedded Redis | Redis views |
| `EVENT_STORE_URL` | `DATABASE_URL` | event store, when it is not the PostgreSQL database |
| `INSTRUMENTS_FILE` | `server/instruments.json` | instrument configuration |
| `LOG_LEVEL` | `INFO` | structlog level |
| `LOG_JSON` | by stdout | `1` JSON lines; `0` console (unset: JSON unless stdout is a terminal) |
| `ENGINE_SHARD` | `main` | name of the engine runner's progress stream `engine-<shard>` |
| `ENGINE_ENABLED` | `1` | run the engine runner |
| `ENGINE_PROCESS` | `0` | `1`: run it as a supervised child process (its own core and GIL) |
| `ENGINE_METRICS_PORT` | `9465` | that child's `/metrics` port (-1, or METRICS_PORT=-1, disables) |
| `ENGINE_BATCH_MAX` | `1000` | most inputs the engine runner handles per atomic append |
| `SNAPSHOT_EVERY` | `10000` | engine snapshot every this many inputs (0 disables) |
| `CLOCK_TICK_MS` | `1000` | period of `ClockTicked` appends (0 disables the clock) |
| `PROJECTIONS_ENABLED` | `1` | run the projection builders and live feeds in this process |
| `QUERY_WAIT_DEFAULT_S` | `5` | longest wait for `min_position` when a call has no deadline |
| `CONSUMER_RETRY_MAX_S` | `5` | longest back-off between retries of a consumer stuck at an event |
| `CONSUMER_LAG_CHECK_S` | `1` | how often consumers' lag is measured against the log's head |
| `ADMIN_API_KEY` | unset | the built-in admin key (at least 32 characters; never in the log) |
| `PUBLIC_MARKET_DATA` | `0` | `1`: trades, books and instruments can be read without a key |
| `ACCOUNTS_ENABLED` | `1` | balances: orders hold funds, trades settle (`0`: matching only) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_INSTRUMENTS_FILE = Path(__file__).resolve().parent / "instruments.json"
LOOPBACK = "127.0.0.1"


def _flag(value: str) -> bool:
    return value.strip().lower() not in ("0", "false", "no", "off", "")


def _optional_path(value: str | None) -> Path | None:
    return None if value is None or not value.strip() else Path(value.strip())


def _optional_flag(value: str | None) -> bool | None:
    return None if value is None or not value.strip() else _flag(value)


@dataclass(frozen=True)
class Settings:
    # Loopback unless opened wider (LISTEN_HOST, or GRPC_HOST / METRICS_HOST).
    grpc_host: str = LOOPBACK
    grpc_port: int = 50051
    http_host: str = LOOPBACK
    http_port: int = 8080
    metrics_host: str = LOOPBACK
    metrics_port: int = 9464
    # TLS when both are set; mutual TLS (client certificates required) with the CA too.
    grpc_tls_cert_file: Path | None = None
    grpc_tls_key_file: Path | None = None
    grpc_tls_client_ca_file: Path | None = None
    # Abuse control per key (server/limits): commands, open streams, message size.
    rate_limit_per_s: float = 100.0
    rate_limit_burst: int = 200
    max_streams_per_key: int = 20
    max_message_bytes: int = 64 * 1024
    max_read_wait_s: float = 30.0
    database_url: str = ""
    redis_url: str = ""
    event_store_url: str = ""
    instruments_file: Path = DEFAULT_INSTRUMENTS_FILE
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON unless stdout is a terminal
    engine_shard: str = "main"
    engine_enabled: bool = True
    engine_process: bool = False
    engine_metrics_port: int = 9465
    engine_batch_max: int = 1000
    snapshot_every: int = 10000
    # Closed order ids the engine remembers (DUPLICATE_ORDER_ID / ORDER_CLOSED); bounds its
    # memory and snapshots. 0: remember all.
    closed_order_memory: int = 100000
    clock_tick_ms: int = 1000
    projections_enabled: bool = True
    query_wait_default_s: float = 5.0
    # A stuck consumer (engine runner, view builder) retries after 0.1 s, then doubling up
    # to this; and its lag against the log's head is measured this often.
    consumer_retry_max_s: float = 5.0
    consumer_lag_check_s: float = 1.0
    # The venue's first admin key (server/identity/keyring.py); "" for none.
    admin_api_key: str = ""
    public_market_data: bool = False
    # Balances, holds and fees in the engine (issue 14); 0: matching alone, as before.
    accounts_enabled: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        default = cls()
        listen_host = env.get("LISTEN_HOST", "").strip() or LOOPBACK
        return cls(
            grpc_host=env.get("GRPC_HOST", "").strip() or listen_host,
            grpc_port=int(env.get("GRPC_PORT", default.grpc_port)),
            http_host=env.get("HTTP_HOST", "").strip() or listen_host,
            http_port=int(env.get("HTTP_PORT", default.http_port)),
            metrics_host=env.get("METRICS_HOST", "").strip() or listen_host,
            metrics_port=int(env.get("METRICS_PORT", default.metrics_port)),
            grpc_tls_cert_file=_optional_path(env.get("GRPC_TLS_CERT_FILE")),
            grpc_tls_key_file=_optional_path(env.get("GRPC_TLS_KEY_FILE")),
            grpc_tls_client_ca_file=_optional_path(env.get("GRPC_TLS_CLIENT_CA_FILE")),
            rate_limit_per_s=float(env.get("RATE_LIMIT_PER_S", default.rate_limit_per_s)),
            rate_limit_burst=int(env.get("RATE_LIMIT_BURST", default.rate_limit_burst)),
            max_streams_per_key=int(env.get("MAX_STREAMS_PER_KEY", default.max_streams_per_key)),
            max_message_bytes=int(env.get("MAX_MESSAGE_BYTES", default.max_message_bytes)),
            max_read_wait_s=float(env.get("MAX_READ_WAIT_S", default.max_read_wait_s)),
            database_url=env.get("DATABASE_URL", "").strip(),
            redis_url=env.get("REDIS_URL", "").strip(),
            event_store_url=env.get("EVENT_STORE_URL", "").strip(),
            instruments_file=Path(env.get("INSTRUMENTS_FILE", str(default.instruments_file))),
            log_level=env.get("LOG_LEVEL", default.log_level).upper(),
            log_json=_optional_flag(env.get("LOG_JSON")),
            engine_shard=env.get("ENGINE_SHARD", default.engine_shard),
            engine_enabled=_flag(env.get("ENGINE_ENABLED", "1")),
            engine_process=_flag(env.get("ENGINE_PROCESS", "0")),
            engine_metrics_port=int(env.get("ENGINE_METRICS_PORT", default.engine_metrics_port)),
            engine_batch_max=int(env.get("ENGINE_BATCH_MAX", default.engine_batch_max)),
            snapshot_every=int(env.get("SNAPSHOT_EVERY", default.snapshot_every)),
            closed_order_memory=int(
                env.get("ENGINE_CLOSED_ORDER_MEMORY", default.closed_order_memory)
            ),
            clock_tick_ms=int(env.get("CLOCK_TICK_MS", default.clock_tick_ms)),
            projections_enabled=_flag(env.get("PROJECTIONS_ENABLED", "1")),
            query_wait_default_s=float(
                env.get("QUERY_WAIT_DEFAULT_S", default.query_wait_default_s)
            ),
            consumer_retry_max_s=float(
                env.get("CONSUMER_RETRY_MAX_S", default.consumer_retry_max_s)
            ),
            consumer_lag_check_s=float(
                env.get("CONSUMER_LAG_CHECK_S", default.consumer_lag_check_s)
            ),
            admin_api_key=env.get("ADMIN_API_KEY", ""),
            public_market_data=_flag(env.get("PUBLIC_MARKET_DATA", "0")),
            accounts_enabled=_flag(env.get("ACCOUNTS_ENABLED", "1")),
        )

    def with_urls(self, database_url: str, redis_url: str) -> Settings:
        """These settings with the service URLs filled in (e.g. embedded servers')."""
        return replace(self, database_url=database_url, redis_url=redis_url)

    @property
    def resolved_event_store_url(self) -> str:
        return self.event_store_url or self.database_url
