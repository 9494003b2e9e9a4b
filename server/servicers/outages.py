"""Dependency outages end a call with UNAVAILABLE, in one place for every RPC.

When PostgreSQL restarts, Redis is down, the event store is closed, or the book views are
being rebuilt, a call cannot be answered now but can be retried: the client gets
UNAVAILABLE (which gRPC clients treat as retryable) with a short message naming what is
unavailable, and the log gets one line (no stack trace), at most once a second for each
dependency with the number of calls refused since. Any other exception goes on as it did
(grpc answers UNKNOWN and logs it: that is a bug to fix, not an outage).

`OutageInterceptor` is installed innermost in `server.app`, so the metrics interceptor
counts these calls as `UNAVAILABLE`. The classification is `server.outage_errors`; it also
decides the in-stream answers of StreamPlaceOrders.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
import structlog
from google.rpc import code_pb2

from clients.generated.exchange.v1 import types_pb2
from server.outage_errors import unavailable_reason

log = structlog.get_logger(__name__)

STREAM_PLACE_ORDERS = "/exchange.v1.OrderCommandService/StreamPlaceOrders"
# Seconds between two log lines about the same unavailable dependency.
LOG_EVERY_S = 1.0


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
        self._wrapped: dict[
            str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]
        ] = {}
        self._refusals = _RefusalLog(clock)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
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
