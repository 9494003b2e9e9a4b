"""Which errors mean a dependency (PostgreSQL, Redis, the event store) cannot be used now.

`unavailable_reason(error)` names the dependency, or None for any other error. The gRPC
outage interceptor answers such calls UNAVAILABLE; the clock logs one line, not a stack
trace per tick. No transport lives here.
"""

from __future__ import annotations

import errno
import socket

import asyncpg
import redis.exceptions

from projections.book_views import BookViewsNotReady
from server.eventstore.port import EventStoreUnavailable

_POSTGRES_ERRORS = (
    asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError, ConnectionFailureError, ...
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
_REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
    }
)
# Modules whose frames tell which dependency a plain OSError came from.
_DEPENDENCY_BY_MODULE = (("asyncpg", "PostgreSQL"), ("redis", "Redis"), ("kurrentdb", "KurrentDB"))


# kurrentdbclient's errors for a server it cannot reach, known by name: importing the
# client here would load its copy of google.rpc's protos beside grpc-status's (a clash).
_KURRENTDB_UNAVAILABLE = frozenset({"ServiceUnavailableError", "DiscoveryFailedError"})


def _kurrentdb_unavailable(error: BaseException) -> bool:
    return any(
        cls.__module__.startswith("kurrentdbclient") and cls.__name__ in _KURRENTDB_UNAVAILABLE
        for cls in type(error).__mro__
    )


def _closed_connection(error: BaseException) -> bool:
    """asyncpg's errors for a connection the server closed (a restart): InterfaceError on a
    closed connection or pool, and the InternalClientError of a pooled connection whose
    protocol was cut in the middle of an operation ("cannot switch to state ...")."""
    text = str(error)
    if isinstance(error, asyncpg.InterfaceError):
        return "connection is closed" in text or "connection was closed" in text
    return isinstance(error, asyncpg.InternalClientError) and "cannot switch to state" in text


def _network_error(error: BaseException) -> bool:
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        return True
    return isinstance(error, OSError) and error.errno in _NETWORK_ERRNOS


def _dependency_in_traceback(error: BaseException) -> str:
    traceback = error.__traceback__
    named = "a dependency"
    while traceback is not None:
        module = str(traceback.tb_frame.f_globals.get("__name__", ""))
        for prefix, name in _DEPENDENCY_BY_MODULE:
            if module.startswith(prefix):
                named = name  # the innermost frame wins: that is where the call failed
        traceback = traceback.tb_next
    return named


def _reason_of(error: BaseException) -> str | None:
    if isinstance(error, BookViewsNotReady):
        return str(error)
    if isinstance(error, _REDIS_ERRORS):
        return "Redis is unavailable"
    if isinstance(error, _POSTGRES_ERRORS) or _closed_connection(error):
        return "PostgreSQL is unavailable"
    if isinstance(error, EventStoreUnavailable) or _kurrentdb_unavailable(error):
        return "the event store is unavailable"
    if _network_error(error):
        return f"{_dependency_in_traceback(error)} is unavailable"
    return None


def unavailable_reason(error: BaseException) -> str | None:
    """A short reason when `error` means a dependency cannot be used now (else None).

    The error's causes are looked at too (an adapter may wrap the driver's error)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        reason = _reason_of(current)
        if reason is not None:
            return reason
        current = current.__cause__ or current.__context__
    return None
