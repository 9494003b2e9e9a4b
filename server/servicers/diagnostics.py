"""DiagnosticsService: the no-op baselines of the benchmarks, unary (Ping) and streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from clients.generated.exchange.v1 import diagnostics_service_pb2 as pb
from clients.generated.exchange.v1 import diagnostics_service_pb2_grpc as pb_grpc


class DiagnosticsServicer(pb_grpc.DiagnosticsServiceServicer):
    async def Ping(
        self,
        request: pb.PingRequest,
        context: grpc.aio.ServicerContext[pb.PingRequest, pb.PingResponse],
    ) -> pb.PingResponse:
        return pb.PingResponse()

    async def StreamPing(
        self,
        request_iterator: AsyncIterator[pb.StreamPingRequest],
        context: grpc.aio.ServicerContext[pb.StreamPingRequest, pb.StreamPingResponse],
    ) -> AsyncIterator[pb.StreamPingResponse]:
        async for request in request_iterator:
            yield pb.StreamPingResponse(request_id=request.request_id)
