"""grpc.aio interceptors: request metrics for every RPC, and OpenTelemetry spans when tracing
is on.

Server: `server_interceptors()` gives the list to pass to `grpc.aio.server(interceptors=...)`,
after `configure_tracing` has run: OpenTelemetry's aio server interceptor (only while tracing
is on, so tracing off adds nothing per call) and `MetricsInterceptor`, which counts calls by
service, method and status code (`exchange_grpc_requests_total`), times them
(`exchange_grpc_request_duration_seconds`), tracks calls in flight and counts messages sent
on server streams. A call the caller ended is counted as what it is (DEADLINE_EXCEEDED when
its deadline passed, CANCELLED otherwise), an abort by its code (e.g. RESOURCE_EXHAUSTED for a
live subscriber dropped for lagging), and only an exception escaping a handler as UNKNOWN.

Client: `client_interceptors()` for `grpc.aio.insecure_channel(..., interceptors=...)` and
`intercept_sync_channel(channel)` for sync channels propagate the trace context (both are
empty / identity while tracing is off).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from server.observability import metrics
from server.observability.handler_wrapping import Behavior, HandlerWrappingInterceptor
from server.observability.tracing import tracing_enabled

_OK = grpc.StatusCode.OK.name
_STATUS_NAME_BY_VALUE = {code.value[0]: code.name for code in grpc.StatusCode}


def split_method(full_method: str) -> tuple[str, str]:
    """`/exchange.v1.OrderCommandService/PlaceOrder` -> (`exchange.v1.OrderCommandService`,
    `PlaceOrder`)."""
    _, _, rest = full_method.partition("/")
    service, _, method = rest.partition("/")
    return service or "unknown", method or "unknown"


def _code_name(context: Any) -> str:
    """The status the handler set on `context` (OK when it set none)."""
    try:
        code = context.code()
    except Exception:  # a context without code() (should not happen with grpc.aio)
        return _OK
    if code is None:
        return _OK
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return _STATUS_NAME_BY_VALUE.get(code, "UNKNOWN")
    return str(code)


class _MethodMetrics:
    """Pre-bound metric children for one method, so a call does no label lookups."""

    __slots__ = ("duration", "in_flight", "method", "requests_by_code", "sent", "service")

    def __init__(self, full_method: str) -> None:
        self.service, self.method = split_method(full_method)
        self.duration = metrics.GRPC_REQUEST_DURATION.labels(self.service, self.method)
        self.in_flight = metrics.GRPC_REQUESTS_IN_FLIGHT.labels(self.service, self.method)
        self.sent = metrics.GRPC_STREAM_MESSAGES_SENT.labels(self.service, self.method)
        self.requests_by_code: dict[str, Any] = {}

    def finish(self, started: float, code: str) -> None:
        self.in_flight.dec()
        self.duration.observe(time.perf_counter() - started)
        counter = self.requests_by_code.get(code)
        if counter is None:
            counter = metrics.GRPC_REQUESTS.labels(self.service, self.method, code)
            self.requests_by_code[code] = counter
        counter.inc()


def _ended_by_client(context: Any) -> str:
    """What ended a call the handler did not finish: the caller's deadline passed, or the
    caller (or the server's shutdown) cancelled it. Neither is a fault of the handler."""
    try:
        remaining = context.time_remaining()
    except Exception:  # a context without time_remaining() (should not happen with grpc.aio)
        remaining = None
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED.name
    return grpc.StatusCode.CANCELLED.name


def _failure_code(error: BaseException, context: Any) -> str:
    """The status a call that raised `error` ended with, as the caller sees it."""
    if isinstance(error, grpc.aio.AbortError):
        name = _code_name(context)
        return "UNKNOWN" if name == _OK else name
    # grpc.aio cancels a unary handler's task, and closes a server stream's generator where
    # it waits to write (GeneratorExit), when the caller's deadline passes or it cancels.
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return _ended_by_client(context)
    return grpc.StatusCode.UNKNOWN.name


def _wrap_unary_response(
    behavior: Callable[[Any, Any], Awaitable[Any]], stats: _MethodMetrics
) -> Callable[[Any, Any], Awaitable[Any]]:
    async def handle(request_or_iterator: Any, context: Any) -> Any:
        stats.in_flight.inc()
        started = time.perf_counter()
        try:
            response = await behavior(request_or_iterator, context)
        except BaseException as error:
            stats.finish(started, _failure_code(error, context))
            raise
        stats.finish(started, _code_name(context))
        return response

    return handle


def _wrap_stream_response(
    behavior: Callable[[Any, Any], Any], stats: _MethodMetrics
) -> Callable[[Any, Any], Any]:
    if inspect.isasyncgenfunction(behavior):

        async def stream(request_or_iterator: Any, context: Any) -> AsyncIterator[Any]:
            stats.in_flight.inc()
            started = time.perf_counter()
            finished = False

            def finish(code: str) -> None:
                nonlocal finished
                if not finished:
                    finished = True
                    stats.finish(started, code)

            # When a write fails in grpc's core (the caller went away mid-write), grpc may
            # end the call without ever closing this generator: the call's end then counts
            # it, as ended by the client.
            context.add_done_callback(lambda _: finish(_ended_by_client(context)))
            try:
                async for message in behavior(request_or_iterator, context):
                    stats.sent.inc()
                    yield message
            except BaseException as error:
                finish(_failure_code(error, context))
                raise
            finish(_code_name(context))

        return stream
    # A coroutine handler that writes with context.write(): time it like a unary call.
    return _wrap_unary_response(behavior, stats)


class MetricsInterceptor(HandlerWrappingInterceptor):
    """Counts, times and tracks every RPC; see the module docstring for the metric names."""

    def __init__(self) -> None:
        super().__init__()
        self._stats: dict[str, _MethodMetrics] = {}

    def _stats_of(self, method: str) -> _MethodMetrics:
        stats = self._stats.get(method)
        if stats is None:
            stats = self._stats[method] = _MethodMetrics(method)
        return stats

    def wrap_unary(self, method: str, behavior: Behavior) -> Behavior:
        return _wrap_unary_response(behavior, self._stats_of(method))

    def wrap_stream(self, method: str, behavior: Behavior) -> Behavior:
        return _wrap_stream_response(behavior, self._stats_of(method))


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """Interceptors for `grpc.aio.server`: tracing (only when on) outermost, then metrics."""
    interceptors: list[grpc.aio.ServerInterceptor] = []
    if tracing_enabled():
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        interceptors.append(aio_server_interceptor())
    interceptors.append(MetricsInterceptor())
    return interceptors


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors for grpc.aio channels: trace propagation when tracing is on, else none."""
    if not tracing_enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors())


def intercept_sync_channel(channel: grpc.Channel) -> grpc.Channel:
    """A sync channel that propagates trace context when tracing is on (else `channel`)."""
    if not tracing_enabled():
        return channel
    from opentelemetry.instrumentation.grpc import client_interceptor

    return grpc.intercept_channel(channel, client_interceptor())
