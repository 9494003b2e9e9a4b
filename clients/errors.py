"""Typed exceptions for refused or failed calls, carrying the gRPC status and rich details.

The service reports bad input as INVALID_ARGUMENT with a google.rpc.BadRequest in the rich
status details (`grpc-status-details-bin`, read with grpcio-status); each field violation
becomes a `FieldViolation` here, so callers can act on `error.field_violations[0].reason`
instead of parsing messages. A google.rpc.ErrorInfo detail, when present, gives `reason`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from clients.generated.exchange.v1 import types_pb2


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One refused request field: `reason` is an upper-case code such as OFF_TICK_GRID."""

    field: str
    description: str
    reason: str = ""


@dataclass(eq=False)
class ExchangeError(Exception):
    """A call the service refused or could not complete."""

    code: grpc.StatusCode
    message: str
    field_violations: tuple[FieldViolation, ...] = ()
    # ErrorInfo.reason when the service sent one (e.g. "ORDER_CLOSED"), else "".
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.reason:
            text += f" ({self.reason})"
        for violation in self.field_violations:
            reason = f" [{violation.reason}]" if violation.reason else ""
            text += f"\n  {violation.field}: {violation.description}{reason}"
        return text


class InvalidArgumentError(ExchangeError):
    """Bad input; see field_violations."""


class NotFoundError(ExchangeError):
    """Unknown order (or instrument)."""


class UnauthenticatedError(ExchangeError):
    """No API key, or an unknown, revoked or malformed one."""


class PermissionDeniedError(ExchangeError):
    """The API key lacks the method's scope, or the request names another account."""


class FailedPreconditionError(ExchangeError):
    """The order is closed (filled, cancelled, rejected or expired)."""


class DeadlineExceededError(ExchangeError):
    """The call's deadline passed, e.g. the views did not reach `min_position` in time."""


class UnavailableError(ExchangeError):
    """The service cannot be reached or is shutting down; retrying may succeed."""


class AbortedError(ExchangeError):
    """A stream subscriber fell behind and was disconnected; resubscribe."""


class ResourceExhaustedError(ExchangeError):
    """A limit of the service: the rate limit (retry after the RetryInfo delay), the cap
    on open streams, or a stream subscriber that fell behind its bounded buffer."""


_ERROR_CLASSES: dict[grpc.StatusCode, type[ExchangeError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
}

_STATUS_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def status_code_from_number(number: int) -> grpc.StatusCode:
    """The grpc.StatusCode of a google.rpc.Code number (UNKNOWN for unknown numbers)."""
    return _STATUS_CODES_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def make_error(
    code: grpc.StatusCode,
    message: str,
    field_violations: tuple[FieldViolation, ...] = (),
    reason: str = "",
    metadata: dict[str, str] | None = None,
) -> ExchangeError:
    """The most specific ExchangeError subclass for `code`."""
    error_class = _ERROR_CLASSES.get(code, ExchangeError)
    return error_class(code, message, field_violations, reason, dict(metadata or {}))


def _rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    try:
        # from_call reads only code(), details() and trailing_metadata(), which every
        # RpcError that grpc raises (sync or aio) has; its stubs ask for a grpc.Call.
        return rpc_status.from_call(error)  # type: ignore[arg-type]
    except (ValueError, AttributeError, TypeError):
        # A malformed or inconsistent details trailer must not hide the status itself.
        return None


def error_from_rpc(error: grpc.RpcError) -> ExchangeError:
    """Decode a failed call (grpc.aio.AioRpcError or grpc.RpcError) into an ExchangeError."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or ""
    violations: list[FieldViolation] = []
    reason = ""
    metadata: dict[str, str] = {}
    rich_status = _rich_status(error)
    if rich_status is not None:
        for detail in rich_status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations.extend(
                    FieldViolation(v.field, v.description, v.reason)
                    for v in bad_request.field_violations
                )
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                error_info = error_details_pb2.ErrorInfo()
                detail.Unpack(error_info)
                reason = error_info.reason
                metadata = dict(error_info.metadata)
    return make_error(code, message, tuple(violations), reason, metadata)


def error_from_command_error(message: types_pb2.CommandError) -> ExchangeError:
    """Decode the in-stream error of StreamPlaceOrders."""
    return make_error(
        status_code_from_number(message.code),
        message.message,
        tuple(FieldViolation(v.field, v.description, v.reason) for v in message.field_violations),
    )
