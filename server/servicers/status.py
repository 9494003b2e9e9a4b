"""Refusals to gRPC statuses: rich details (google.rpc.BadRequest) for invalid arguments."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from clients.generated.exchange.v1 import types_pb2
from server.errors import InvalidArgument, Refused


def grpc_code(refusal: Refused) -> grpc.StatusCode:
    """The gRPC code of a refusal's status (the one place that maps them)."""
    return grpc.StatusCode[refusal.status]


def rich_status(refusal: Refused) -> grpc.Status:
    status = status_pb2.Status(code=grpc_code(refusal).value[0], message=refusal.message)
    if isinstance(refusal, InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=violation.field,
                    description=violation.description,
                    reason=violation.reason,
                )
                for violation in refusal.violations
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(bad_request)
        status.details.append(detail)
    return rpc_status.to_status(status)


async def abort_refused(context: grpc.aio.ServicerContext[Any, Any], refusal: Refused) -> NoReturn:
    await context.abort_with_status(rich_status(refusal))
    raise AssertionError("abort_with_status returned")  # it always raises


def command_error(refusal: Refused) -> types_pb2.CommandError:
    """The in-stream form of a refusal (StreamPlaceOrders answers)."""
    violations = getattr(refusal, "violations", ())
    return types_pb2.CommandError(
        code=grpc_code(refusal).value[0],
        message=refusal.message,
        field_violations=[
            types_pb2.FieldViolation(
                field=violation.field, description=violation.description, reason=violation.reason
            )
            for violation in violations
        ],
    )


def internal_error() -> types_pb2.CommandError:
    """The in-stream answer to a request that failed on our side (details are in the log)."""
    return types_pb2.CommandError(code=code_pb2.INTERNAL, message="internal error")
