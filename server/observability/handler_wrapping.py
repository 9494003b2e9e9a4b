"""One mechanism for server interceptors that wrap each method's behaviour.

The gRPC server hands back the same handler object for a method on every call, so a
wrapping interceptor builds its wrapped handler once per method and reuses it. Subclasses
say how to wrap a behaviour that answers once (unary or client-streaming) and one that
streams its answers (`wrap_unary` / `wrap_stream`); the handler plumbing is here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

Behavior = Callable[[Any, Any], Any]


class HandlerWrappingInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        # method -> (handler seen, wrapped handler)
        self._wrapped: dict[
            str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]
        ] = {}

    def wrap_unary(self, method: str, behavior: Behavior) -> Behavior:
        raise NotImplementedError

    def wrap_stream(self, method: str, behavior: Behavior) -> Behavior:
        raise NotImplementedError

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
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self.wrap_unary(method, handler.unary_unary), **common
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self.wrap_unary(method, handler.stream_unary), **common
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self.wrap_stream(method, handler.unary_stream), **common
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self.wrap_stream(method, handler.stream_stream), **common
            )
        return handler
