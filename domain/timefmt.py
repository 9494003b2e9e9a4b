"""RFC 3339 UTC timestamps <-> integer nanoseconds since the Unix epoch (exact)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from domain.errors import InvalidField
from domain.input_rules import check_time_ns, shown

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_S = 1_000_000_000
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)


def parse_rfc3339(text: object, field_name: str = "time") -> int:
    """'2026-01-01T00:00:05.25Z' -> ns since epoch; any offset accepted, up to 9 decimals.
    Times outside `domain.input_rules`' range are refused (OUT_OF_RANGE)."""
    if not isinstance(text, str):
        raise InvalidField(field_name, "MALFORMED", f"{field_name} must be an RFC 3339 string")
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise InvalidField(
            field_name, "MALFORMED", f"{field_name} {shown(text)} is not an RFC 3339 timestamp"
        )
    date, clock, fraction, offset = match.groups()
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        moment = datetime.fromisoformat(f"{date}T{clock}{offset}")
    except ValueError:
        raise InvalidField(
            field_name, "MALFORMED", f"{field_name} {text!r} is not a valid date/time"
        ) from None
    seconds = (moment - _EPOCH) // timedelta(seconds=1)
    nanos = int((fraction or "0").ljust(9, "0"))
    return check_time_ns(field_name, seconds * _NS_PER_S + nanos)


_last_formatted: tuple[int, str] = (-1, "")


def format_rfc3339(nanos: int) -> str:
    """ns since epoch -> '2026-01-01T00:00:05Z' (fraction only when non-zero, no padding)."""
    global _last_formatted
    cached_nanos, cached_text = _last_formatted
    if cached_nanos == nanos:
        return cached_text  # events of one command share one timestamp
    seconds, fraction = divmod(nanos, _NS_PER_S)
    text = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    text += "Z"
    _last_formatted = (nanos, text)
    return text
