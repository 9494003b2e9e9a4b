"""Reading a request: its JSON body into a body struct, its query parameters, each refused
as the rules refuse a field (``InvalidArgument``: the field and a reason code)."""

from __future__ import annotations

import calendar
import re
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

import msgspec
from starlette.requests import Request

from server.errors import InvalidArgument
from server.request_checks import checked_time

_Body = TypeVar("_Body")


class RequestRefused(InvalidArgument):
    """A refusal that names the field as the request does already (camelCase)."""


# Largest body the API reads (an order is a few hundred bytes), as gRPC's MAX_MESSAGE_BYTES.
MAX_BODY_BYTES = 64 * 1024
MAX_INT_PARAM = 2**31 - 1
# A decimal whose exponent is beyond this is passed on as written (the rules refuse its
# text) rather than spelled out digit by digit.
_PLAIN_EXPONENT = 64
_AT_FIELD = re.compile(r"at `\$\.([A-Za-z0-9_]+)")
_MISSING_FIELD = re.compile(r"missing required field `([A-Za-z0-9_]+)`")


async def json_body(
    request: Request, body_type: type[_Body], max_bytes: int = MAX_BODY_BYTES
) -> _Body:
    """The request's JSON body as `body_type`; a malformed one is INVALID_ARGUMENT naming
    the field (its camelCase name) and MALFORMED or REQUIRED."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_bytes:
            raise RequestRefused.of("body", "TOO_LONG", f"the body is over {max_bytes} bytes")
    if not raw.strip():
        raise RequestRefused.of("body", "REQUIRED", "a JSON body is required")
    try:
        return msgspec.json.decode(bytes(raw), type=body_type)
    except msgspec.ValidationError as error:
        text = str(error)
        missing = _MISSING_FIELD.search(text)
        if missing is not None:
            raise RequestRefused.of(missing[1], "REQUIRED", f"{missing[1]} is required") from None
        at = _AT_FIELD.search(text)
        field = at[1] if at is not None else "body"
        raise RequestRefused.of(field, "MALFORMED", text) from None
    except msgspec.DecodeError as error:
        raise RequestRefused.of("body", "MALFORMED", f"the body is not JSON: {error}") from None


def decimal_text(value: Decimal | None) -> str | None:
    """A decimal the client sent, as the text the rules read ("45000.00" for 45000.00)."""
    if value is None:
        return None
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -_PLAIN_EXPONENT <= exponent <= _PLAIN_EXPONENT:
        return format(value, "f")
    return str(value)  # NaN, Infinity, 1E+999999: refused by the rules, as written


def checked_moment(field: str, moment: datetime | None) -> datetime | None:
    """A time the client sent, when inside what every reader of the log can hold (refused
    under the rules' name of the field)."""
    if moment is None:
        return None
    seconds = calendar.timegm(moment.utctimetuple())
    return checked_time(field, seconds, moment.microsecond * 1000)


def query_text(request: Request, name: str) -> str:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise RequestRefused.of(name, "MALFORMED", f"{name} is given more than once")
    return values[0] if values else ""


def query_int(request: Request, name: str) -> int:
    """A non-negative integer parameter (0 when absent)."""
    text = query_text(request, name)
    if not text:
        return 0
    if not text.isascii() or not text.lstrip("-").isdigit() or len(text) > 12:
        raise RequestRefused.of(name, "MALFORMED", f"{name} must be an integer")
    value = int(text)
    if value < 0:
        raise RequestRefused.of(name, "NOT_POSITIVE", f"{name} must not be negative")
    if value > MAX_INT_PARAM:
        raise RequestRefused.of(name, "OUT_OF_RANGE", f"{name} must be at most {MAX_INT_PARAM}")
    return value


_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0", ""})


def query_flag(request: Request, name: str) -> bool:
    text = query_text(request, name).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RequestRefused.of(name, "MALFORMED", f"{name} must be true or false")
