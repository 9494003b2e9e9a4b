"""Fault tests: a PostgreSQL and a Redis of the tests' own (servers.py), which they restart,
even when DATABASE_URL / REDIS_URL name the machine's shared servers."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import structlog
from servers import OwnPostgres, OwnRedis


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def service_logging() -> Iterator[None]:
    """structlog as the service runs in a container (LOG_JSON=1: one JSON line per event,
    tracebacks as plain text), for this module only. Unconfigured, structlog renders an
    exception's traceback with every frame's locals, which takes seconds of the event loop
    for a failure of the engine runner: calls would then miss their deadlines for that."""
    saved = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        wrapper_class=structlog.make_filtering_bound_logger(30),  # WARNING
        cache_logger_on_first_use=False,
    )
    yield
    structlog.configure(**saved)
