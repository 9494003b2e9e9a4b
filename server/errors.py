"""Typed refusals of commands and queries, each mapping to one gRPC status code.

Handlers raise these; the servicers translate them to status codes (and, for invalid
arguments, google.rpc.BadRequest field violations). Nothing is appended for a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class FieldViolation:
    field: str
    reason: str  # upper-case code, e.g. OFF_TICK_GRID, REQUIRED, UNKNOWN_INSTRUMENT
    description: str


class Refused(Exception):
    """A request the service refuses; ``code`` is the gRPC status it maps to."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(Refused):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.reason} ({v.description})" for v in violations))
        self.violations = tuple(violations)

    @classmethod
    def of(cls, field: str, reason: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, reason, description)])


class OrderNotFound(Refused):
    code = grpc.StatusCode.NOT_FOUND

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id!r} not found")
        self.order_id = order_id


class NotOrderOwner(Refused):
    code = grpc.StatusCode.PERMISSION_DENIED

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id!r} belongs to another user")
        self.order_id = order_id


class OrderClosed(Refused):
    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, order_id: str, status: str) -> None:
        super().__init__(f"order {order_id!r} is closed ({status})")
        self.order_id = order_id
        self.status = status


class IdempotencyConflict(Refused):
    """A client_order_id maps to an order id whose stream holds something else (never seen)."""

    code = grpc.StatusCode.ALREADY_EXISTS


class Unavailable(Refused):
    code = grpc.StatusCode.UNAVAILABLE
