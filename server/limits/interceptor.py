"""The limits applied to every call, before its handler runs.

- The four unary commands each spend a token of the caller's bucket; an empty bucket ends
  the call with RESOURCE_EXHAUSTED and RetryInfo (the handler never runs, nothing is
  appended). StreamPlaceOrders spends one per order, in the servicer (``charge_command``),
  so a refused order gets its own answer and the stream goes on.
- Every streaming call (server or bidirectional) holds one of the key's stream slots while
  it is open; with none free the call ends with RESOURCE_EXHAUSTED at once.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import grpc

from clients.generated.exchange.v1 import order_command_service_pb2
from server.limits.answers import rate_limited_status, too_many_streams_message
from server.limits.keying import charge, limit_key_of
from server.limits.stream_slots import StreamSlots
from server.limits.token_bucket import RateLimiter
from server.observability.handler_wrapping import Behavior, HandlerWrappingInterceptor

_COMMAND_SERVICE = order_command_service_pb2.DESCRIPTOR.services_by_name["OrderCommandService"]
# The unary commands charged here (StreamPlaceOrders is charged per order by its servicer).
CHARGED_METHODS = frozenset(
    f"/{_COMMAND_SERVICE.full_name}/{name}"
    for name in ("PlaceOrder", "AmendOrder", "CancelOrder", "CancelAllOrders")
)


def charge_command(limiter: RateLimiter, context: Any) -> float:
    """Spend one token of the caller's bucket: 0.0 when the command may go, else the
    seconds until it may (the refusal is counted in ``exchange_rate_limited_total``)."""
    return charge(limiter, limit_key_of(context))


class LimitInterceptor(HandlerWrappingInterceptor):
    def __init__(self, rate_limiter: RateLimiter, stream_slots: StreamSlots) -> None:
        super().__init__()
        self._rate_limiter = rate_limiter
        self._stream_slots = stream_slots

    def wrap_unary(self, method: str, behavior: Behavior) -> Behavior:
        if method not in CHARGED_METHODS:
            return behavior
        limiter = self._rate_limiter

        async def handle(request_or_iterator: Any, context: Any) -> Any:
            retry_after_s = charge_command(limiter, context)
            if retry_after_s > 0:
                await context.abort_with_status(rate_limited_status(retry_after_s))
            return await behavior(request_or_iterator, context)

        return handle

    def wrap_stream(self, method: str, behavior: Behavior) -> Behavior:
        slots = self._stream_slots
        too_many = too_many_streams_message(slots.cap)
        if not inspect.isasyncgenfunction(behavior):
            # A handler writing with context.write(): hold the slot while it runs.
            async def handle(request_or_iterator: Any, context: Any) -> Any:
                key = limit_key_of(context)
                if not slots.open(key):
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, too_many)
                try:
                    return await behavior(request_or_iterator, context)
                finally:
                    slots.close(key)

            return handle

        async def stream(request_or_iterator: Any, context: Any) -> AsyncIterator[Any]:
            key = limit_key_of(context)
            if not slots.open(key):
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, too_many)
            try:
                async for message in behavior(request_or_iterator, context):
                    yield message
            finally:
                slots.close(key)

        return stream
