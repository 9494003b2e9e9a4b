"""Refusals and failures as HTTP answers: one status per refusal kind, one JSON error body.

A ``server.errors.Refused`` names its canonical status (google.rpc's code names, as on
gRPC); here it becomes an HTTP status: 400 for a field the rules refuse (the body names
the field and the reason code), 401 without a valid key, 403 without the scope or for
another account, 404 for an unknown (or another account's) order, 409 for a closed order
or a reused client order id, 429 with ``Retry-After`` over the rate limit, 503 when a
dependency is down (``server.outage_errors``), 504 when the outcome or the views are not
there in time. Anything else is a 500 and a logged bug.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec
import structlog
from starlette.responses import Response

from server.errors import InvalidArgument, RateLimited, Refused, Unauthenticated
from server.http.bodies import ErrorBody, ErrorDetail, Violation
from server.http.inputs import RequestRefused
from server.outage_errors import unavailable_reason
from server.outcomes import OutcomeNotYet

log = structlog.get_logger(__name__)

HTTP_STATUS_OF: Mapping[str, int] = {
    "INVALID_ARGUMENT": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "FAILED_PRECONDITION": 409,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
# How soon a client may retry a call refused for an outage.
OUTAGE_RETRY_AFTER_S = 1
JSON = "application/json"


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(msgspec.json.encode(body), status, headers=dict(headers or {}), media_type=JSON)


def error_response(
    code: str,
    message: str,
    status: int,
    violations: tuple[Violation, ...] = (),
    headers: Mapping[str, str] | None = None,
) -> Response:
    first = violations[0] if violations else None
    detail = ErrorDetail(
        code=code,
        message=message,
        field=None if first is None else first.field,
        reason=None if first is None else first.reason,
        violations=list(violations),
    )
    return json_response(ErrorBody(detail), status, headers)


def refusal_response(refusal: Refused, field_names: Mapping[str, str] | None = None) -> Response:
    """The answer to a refusal; `field_names` renames the rules' field names to the
    request's own (``side`` -> ``type`` in an order body, say)."""
    status = HTTP_STATUS_OF.get(refusal.status, 400)
    headers: dict[str, str] = {}
    violations: tuple[Violation, ...] = ()
    message = refusal.message
    if isinstance(refusal, InvalidArgument):
        names = {} if isinstance(refusal, RequestRefused) else field_names or {}
        violations = tuple(
            Violation(names.get(v.field, v.field), v.reason, v.description)
            for v in refusal.violations
        )
        message = "; ".join(f"{v.field}: {v.reason} ({v.description})" for v in violations)
    if isinstance(refusal, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(refusal.retry_after_s)))
    if isinstance(refusal, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    return error_response(refusal.status, message, status, violations, headers)


def failure_response(
    error: Exception, path: str, field_names: Mapping[str, str] | None = None
) -> Response:
    """The answer to any exception a route raised."""
    if isinstance(error, Refused):
        return refusal_response(error, field_names)
    if isinstance(error, OutcomeNotYet):
        return error_response("DEADLINE_EXCEEDED", str(error), 504)
    reason = unavailable_reason(error)
    if reason is not None:
        log.warning("http_call_unavailable", reason=reason, path=path)
        return error_response(
            "UNAVAILABLE",
            f"{reason}; retry",
            503,
            headers={"Retry-After": str(OUTAGE_RETRY_AFTER_S)},
        )
    log.error("http_call_failed", path=path, error=repr(error)[:300], exc_info=error)
    return error_response("INTERNAL", "internal error", 500)
