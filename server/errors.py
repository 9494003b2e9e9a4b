"""Typed refusals of commands and queries, each naming its canonical status.

Handlers raise these; only the transports know what a status is on the wire: the gRPC
servicers map `status` to a gRPC code (server/servicers/status.py; invalid arguments with
google.rpc.BadRequest field violations), an HTTP route would map it to its status code.
The names are google.rpc.Code's. Nothing is appended for a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import InvalidField


@dataclass(frozen=True)
class FieldViolation:
    field: str
    reason: str  # upper-case code, e.g. OFF_TICK_GRID, REQUIRED, UNKNOWN_INSTRUMENT
    description: str


# A refusal's text goes back to the client in gRPC trailers (8 KB by default): it never
# echoes a whole bad value (see domain.input_rules.shown), and is cut here whatever it holds.
MAX_MESSAGE_CHARS = 512
MAX_DESCRIPTION_CHARS = 200


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Refused(Exception):
    """A request the service refuses; ``status`` names the canonical status it maps to."""

    status: str = "UNKNOWN"  # a google.rpc.Code name

    def __init__(self, message: str) -> None:
        message = _cut(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.message = message


class InvalidArgument(Refused):
    status = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation]) -> None:
        violations = [
            FieldViolation(v.field, v.reason, _cut(v.description, MAX_DESCRIPTION_CHARS))
            for v in violations
        ]
        super().__init__("; ".join(f"{v.field}: {v.reason} ({v.description})" for v in violations))
        self.violations = tuple(violations)

    @classmethod
    def of(cls, field: str, reason: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, reason, description)])

    @classmethod
    def from_field(cls, error: InvalidField) -> InvalidArgument:
        """The refusal of an input the domain's rules did not accept."""
        return cls.of(error.field, error.reason, error.message)


class OrderNotFound(Refused):
    status = "NOT_FOUND"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id!r} not found")
        self.order_id = order_id


class Unauthenticated(Refused):
    """No API key, or one that is unknown, revoked or malformed."""

    status = "UNAUTHENTICATED"


class PermissionDenied(Refused):
    """The key lacks the scope, or names an account other than its own."""

    status = "PERMISSION_DENIED"


class OrderClosed(Refused):
    status = "FAILED_PRECONDITION"

    def __init__(self, order_id: str, order_status: str) -> None:
        super().__init__(f"order {order_id!r} is closed ({order_status})")
        self.order_id = order_id
        self.order_status = order_status


class IdempotencyConflict(Refused):
    """A client_order_id already names an order with other parameters (or another owner)."""

    status = "ALREADY_EXISTS"


class AccountsDisabled(Refused):
    """A transfer or balance call on a venue that runs with ACCOUNTS_ENABLED=0."""

    status = "FAILED_PRECONDITION"


class PositionBeyondLog(Refused):
    """A `min_position` token the log has not reached: no wait could ever end."""

    status = "OUT_OF_RANGE"


class Unavailable(Refused):
    status = "UNAVAILABLE"


class RateLimited(Refused):
    """The key's command budget is spent (``server.limits``): retry after `retry_after_s`."""

    status = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
