"""Dependency outages end a call with UNAVAILABLE, in one place for every RPC.

When PostgreSQL restarts, Redis is down, the event store is closed, or the book views are
being rebuilt, a call cannot be answered now but can be retried: the client gets
UNAVAILABLE (which gRPC clients treat as retryable) with a short message naming what is
unavailable, and the log gets one line (no stack trace), at most once a second for each
dependency with the number of calls refused since. Any other exception goes on as it did
(grpc answers UNKNOWN and logs it: that is a bug to fix, not an outage).

`OutageInterceptor` is installed innermost in `server.app`, so the metrics interceptor
counts these calls as `UNAVAILABLE`. `unavailable_reason(error)` is the classification,
also used for the in-stream answers of StreamPlaceOrders.
"""

from __future__ import annotations

import errno
import inspect
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import grpc
import grpc.aio
import redis.exceptions
import structlog
from google.rpc import code_pb2

from clients.generated.exchange.v1 import types_pb2
from projections.book_views import BookViewsNotReady
from server.eventstore.port import EventStoreUnavailable

log = structlog.get_logger(__name__)

STREAM_PLACE_ORDERS = "/exchange.v1.OrderCommandService/StreamPlaceOrders"
# Seconds between two log lines about the same unavailable dependency.
LOG_EVERY_S = 1.0

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


class _RefusalLog:
    """One line per dependency per LOG_EVERY_S, counting the calls refused in between."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last_at: dict[str, float] = {}
        self._refused_since: dict[str, int] = {}

    def refused(self, reason: str, method: str, error: BaseException) -> None:
        self._refused_since[reason] = self._refused_since.get(reason, 0) + 1
        now = self._clock()
        if now - self._last_at.get(reason, -LOG_EVERY_S) < LOG_EVERY_S:
            return
        self._last_at[reason] = now
        calls, self._refused_since[reason] = self._refused_since[reason], 0
        log.warning(
            "calls_unavailable",
            reason=reason,
            method=method,
            error=f"{type(error).__name__}: {error}"[:200],
            calls=calls,
        )


_stream_refusals = _RefusalLog()


def outage_error(error: BaseException) -> types_pb2.CommandError | None:
    """The in-stream answer (StreamPlaceOrders) to a request that hit a dependency outage:
    UNAVAILABLE with the reason, logged like a refused call; None for any other error."""
    reason = unavailable_reason(error)
    if reason is None:
        return None
    _stream_refusals.refused(reason, STREAM_PLACE_ORDERS, error)
    return types_pb2.CommandError(code=code_pb2.UNAVAILABLE, message=f"{reason}; retry")


def _wrap_unary_response(
    behavior: Callable[[Any, Any], Awaitable[Any]], method: str, refusals: _RefusalLog
) -> Callable[[Any, Any], Awaitable[Any]]:
    async def handle(request_or_iterator: Any, context: Any) -> Any:
        try:
            return await behavior(request_or_iterator, context)
        except Exception as error:
            reason = unavailable_reason(error)
            if reason is None:
                raise
            refusals.refused(reason, method, error)
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{reason}; retry")

    return handle


def _wrap_stream_response(
    behavior: Callable[[Any, Any], Any], method: str, refusals: _RefusalLog
) -> Callable[[Any, Any], Any]:
    if not inspect.isasyncgenfunction(behavior):
        return _wrap_unary_response(behavior, method, refusals)

    async def stream(request_or_iterator: Any, context: Any) -> AsyncIterator[Any]:
        try:
            async for message in behavior(request_or_iterator, context):
                yield message
        except Exception as error:
            reason = unavailable_reason(error)
            if reason is None:
                raise
            refusals.refused(reason, method, error)
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{reason}; retry")

    return stream


class OutageInterceptor(grpc.aio.ServerInterceptor):
    """Ends a call whose handler hit a dependency outage with UNAVAILABLE (see module doc);
    `clock` (monotonic seconds) paces the log lines."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}
        self._refusals = _RefusalLog(clock)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: Any) -> Any:
        common = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        refusals = self._refusals
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary_response(handler.unary_unary, method, refusals), **common
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary_response(handler.stream_unary, method, refusals), **common
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream_response(handler.unary_stream, method, refusals), **common
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _wrap_stream_response(handler.stream_stream, method, refusals), **common
            )
        return handler
