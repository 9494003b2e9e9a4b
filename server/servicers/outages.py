"""How a handler's exception ends its call, in one place for every RPC.

A refusal (`server.errors.Refused`) ends it with its own status, an outcome that did not
come in time (`OutcomeNotYet`) with DEADLINE_EXCEEDED: handlers just raise them.
Dependency outages end a call with UNAVAILABLE.

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
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
import structlog
from google.rpc import code_pb2

from clients.generated.exchange.v1 import types_pb2
from server.errors import Refused
from server.observability.handler_wrapping import Behavior, HandlerWrappingInterceptor
from server.outage_errors import unavailable_reason
from server.outcomes import OutcomeNotYet
from server.servicers.status import abort_refused

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


async def _refuse_outage(
    error: Exception, method: str, refusals: _RefusalLog, context: Any
) -> None:
    """End the call with the status `error` stands for: a refusal's own (rich details for
    INVALID_ARGUMENT), DEADLINE_EXCEEDED for an outcome that did not come in time,
    UNAVAILABLE for a dependency outage; any other error is re-raised."""
    if isinstance(error, Refused):
        await abort_refused(context, error)
    if isinstance(error, OutcomeNotYet):
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(error))
    reason = unavailable_reason(error)
    if reason is None:
        raise error
    refusals.refused(reason, method, error)
    await context.abort(grpc.StatusCode.UNAVAILABLE, f"{reason}; retry")


class OutageInterceptor(HandlerWrappingInterceptor):
    """Ends a call whose handler hit a dependency outage with UNAVAILABLE (see module doc);
    `clock` (monotonic seconds) paces the log lines."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._refusals = _RefusalLog(clock)

    def wrap_unary(self, method: str, behavior: Behavior) -> Behavior:
        refusals = self._refusals

        async def handle(request_or_iterator: Any, context: Any) -> Any:
            try:
                return await behavior(request_or_iterator, context)
            except Exception as error:
                await _refuse_outage(error, method, refusals, context)

        return handle

    def wrap_stream(self, method: str, behavior: Behavior) -> Behavior:
        if not inspect.isasyncgenfunction(behavior):
            return self.wrap_unary(method, behavior)
        refusals = self._refusals

        async def stream(request_or_iterator: Any, context: Any) -> AsyncIterator[Any]:
            try:
                async for message in behavior(request_or_iterator, context):
                    yield message
            except Exception as error:
                await _refuse_outage(error, method, refusals, context)

        return stream
