"""DiagnosticsService.Ping: the no-op baseline of the benchmarks."""

from __future__ import annotations

import grpc

from clients.generated.exchange.v1 import diagnostics_service_pb2 as pb
from clients.generated.exchange.v1 import diagnostics_service_pb2_grpc as pb_grpc


class DiagnosticsServicer(pb_grpc.DiagnosticsServiceServicer):
    async def Ping(
        self, request: pb.PingRequest, context: grpc.aio.ServicerContext
    ) -> pb.PingResponse:
        return pb.PingResponse()
