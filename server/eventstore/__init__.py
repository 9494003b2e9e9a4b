"""The event store: the port (`port.py`), its adapters and `open_event_store(url)`.

- `postgresql://...` (or `postgres://`): `PostgresEventStore`, migrated on open.
- `kurrentdb://...`, `esdb://...`, `kdb://...` (and their `+discover` forms):
  `KurrentDBEventStore` through `kurrentdbclient`.
- `memory://`: a new, empty `InMemoryEventStore`, the fake for fast tests (never production:
  the log lives in this process only).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from server.eventstore.port import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    EventFilter,
    EventIdConflict,
    EventStore,
    EventStoreError,
    Expectation,
    ExpectedVersion,
    LogPosition,
    NewEvent,
    RecordedEvent,
    StreamAppend,
    UnsupportedOperation,
    WrongExpectedVersion,
)

POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})
KURRENTDB_SCHEMES = frozenset(
    {"kurrentdb", "kurrentdb+discover", "esdb", "esdb+discover", "kdb", "kdb+discover"}
)
MEMORY_SCHEMES = frozenset({"memory"})


async def open_event_store(url: str, **options: Any) -> EventStore:
    """Open the store a URL names; PostgreSQL migrations run here (safe to repeat).

    `options` go to the adapter's `open` (e.g. `max_pool_size=` for PostgreSQL).
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme in POSTGRES_SCHEMES:
        from server.eventstore.postgres import PostgresEventStore

        return await PostgresEventStore.open(url, **options)
    if scheme in KURRENTDB_SCHEMES:
        # Imported only when asked for: it pulls in gRPC and the KurrentDB protos.
        from server.eventstore.kurrentdb import KurrentDBEventStore

        return await KurrentDBEventStore.open(url, **options)
    if scheme in MEMORY_SCHEMES:
        from server.eventstore.memory import InMemoryEventStore

        return await InMemoryEventStore.open(url, **options)
    raise ValueError(
        f"unsupported event store URL scheme {scheme!r}: "
        "use postgresql://, kurrentdb://, esdb:// or memory://"
    )


__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendResult",
    "EventFilter",
    "EventIdConflict",
    "EventStore",
    "EventStoreError",
    "Expectation",
    "ExpectedVersion",
    "LogPosition",
    "NewEvent",
    "RecordedEvent",
    "StreamAppend",
    "UnsupportedOperation",
    "WrongExpectedVersion",
    "open_event_store",
]
