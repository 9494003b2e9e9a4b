"""The answers of the limits: RESOURCE_EXHAUSTED, with ``google.rpc.RetryInfo`` when
waiting helps (the rate limit), as a call's status or as a StreamPlaceOrders answer."""

from __future__ import annotations

import math

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from clients.generated.exchange.v1 import types_pb2
from server.limits.refusals import rate_limited_message, too_many_streams_message

__all__ = [
    "rate_limited_error",
    "rate_limited_message",
    "rate_limited_status",
    "too_many_streams_message",
]


def _retry_delay(retry_after_s: float) -> duration_pb2.Duration:
    # Rounded up to the millisecond, so a client that waits exactly this finds a token.
    millis = max(1, math.ceil(retry_after_s * 1000))
    return duration_pb2.Duration(seconds=millis // 1000, nanos=(millis % 1000) * 1_000_000)


def rate_limited_status(retry_after_s: float) -> grpc.Status:
    """RESOURCE_EXHAUSTED with a RetryInfo detail: the time until one token."""
    status = status_pb2.Status(
        code=code_pb2.RESOURCE_EXHAUSTED, message=rate_limited_message(retry_after_s)
    )
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=_retry_delay(retry_after_s)))
    status.details.append(detail)
    return rpc_status.to_status(status)


def rate_limited_error(retry_after_s: float) -> types_pb2.CommandError:
    """The in-stream answer (StreamPlaceOrders) to an order over the rate limit."""
    return types_pb2.CommandError(
        code=code_pb2.RESOURCE_EXHAUSTED, message=rate_limited_message(retry_after_s)
    )
