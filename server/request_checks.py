"""The door's checks shared by every entry (gRPC calls, the streaming entry, later HTTP).

Each check raises ``InvalidArgument`` naming the field and a reason code, so a request is
refused before anything is read or appended; the rules themselves live in
``domain.input_rules``. Transport-specific decoding (protobuf enum numbers, timestamps)
stays with each transport and ends here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from domain.errors import InvalidField
from domain.input_rules import (
    EARLIEST_TIME_NS,
    LATEST_TIME_NS,
    check_identifier,
    shown,
)
from domain.instruments import Instrument
from projections.readers import page_size_of as readers_page_size
from server.errors import InvalidArgument
from server.eventstore.port import LogPosition

_NS_PER_S = 1_000_000_000


def require_id(field: str, value: str) -> str:
    """`value` when it is a valid identifier (required)."""
    try:
        return check_identifier(field, value)
    except InvalidField as error:
        raise InvalidArgument.from_field(error) from None


def optional_id(field: str, value: str) -> str | None:
    """None for an empty field, else `value` when it is a valid identifier."""
    return require_id(field, value) if value else None


def known_instrument(
    instruments: Mapping[str, Instrument], field: str, symbol: str, *, required: bool
) -> str | None:
    """The symbol of a configured instrument; None when absent and not required."""
    if not symbol:
        if required:
            raise InvalidArgument.of(field, "REQUIRED", f"{field} is required")
        return None
    if symbol not in instruments:
        raise InvalidArgument.of(field, "UNKNOWN_INSTRUMENT", f"unknown instrument {shown(symbol)}")
    return symbol


def page_size_of(requested: int) -> int:
    """The page size to use; a negative one is refused. The readers' one rule decides the
    rest (the default for 0, at most their maximum)."""
    if requested < 0:
        raise InvalidArgument.of("page_size", "NOT_POSITIVE", "page_size must not be negative")
    return readers_page_size(requested)


def log_position_of(field: str, token: str) -> LogPosition | None:
    """The position a token names; None for an empty token."""
    if not token:
        return None
    try:
        return LogPosition.parse(token)
    except ValueError:
        raise InvalidArgument.of(
            field, "MALFORMED", f"{field} {shown(token)} is not a log position token"
        ) from None


def checked_time(field: str, seconds: int, nanos: int) -> datetime:
    """A (seconds, nanos) timestamp as aware UTC, when inside what every reader of the log
    can hold (`domain.input_rules`); microseconds are kept, as everywhere in the service."""
    if not 0 <= nanos < _NS_PER_S:
        raise InvalidArgument.of(field, "OUT_OF_RANGE", f"{field} nanos must be 0 to 999999999")
    if not EARLIEST_TIME_NS <= seconds * _NS_PER_S + nanos < LATEST_TIME_NS:
        raise InvalidArgument.of(
            field, "OUT_OF_RANGE", f"{field} must be from 1970 to before 2200 (UTC)"
        )
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanos // 1000)
