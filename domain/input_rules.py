"""What input may hold: identifiers, decimal text and times, checked the same way everywhere.

The rule behind every limit here: what the command side accepts into the log, every reader
of the log must be able to take (PostgreSQL text cannot hold NUL, the snapshot format holds
64-bit integers, a terminal must not be rewritten by an id). The gRPC door, the streaming
entry, the replayer and the engine runner's input decoding all apply these same checks.

- Identifiers (user ids, order ids, client order ids, symbols): 1 to 128 visible ASCII
  characters (``!`` to ``~``): no space, no control or format character, nothing a
  terminal or a database treats specially.
- Decimals: plain ASCII text ``-?[0-9]+(.[0-9]+)?`` of at most 40 characters: no sign
  ``+``, no spaces, no ``_``, no exponent, no other script's digits.
- Prices and quantities: at most 10^15 ticks or lots.
- Times: from the Unix epoch up to (not including) 2200-01-01T00:00:00Z, so nanoseconds
  always fit a signed 64-bit integer.
"""

from __future__ import annotations

import re
from typing import Final

from domain.errors import InvalidField

MAX_ID_LENGTH: Final = 128
MAX_DECIMAL_CHARS: Final = 40
MAX_STEPS: Final = 10**15
EARLIEST_TIME_NS: Final = 0
LATEST_TIME_NS: Final = 7_258_118_400 * 1_000_000_000  # 2200-01-01T00:00:00Z
LATEST_TIME_TEXT: Final = "2200-01-01T00:00:00Z"
# How much of a bad value an error message shows.
SHOWN_CHARS: Final = 40

_IDENTIFIER = re.compile(r"[!-~]+")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def shown(value: object) -> str:
    """`value` for an error message: its repr, cut to a few dozen characters."""
    text = repr(value)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}... ({len(text)} characters)"


def check_identifier(field: str, value: object) -> str:
    """`value` when it is a valid identifier; InvalidField (REQUIRED, TOO_LONG, MALFORMED)."""
    if not isinstance(value, str):
        raise InvalidField(field, "MALFORMED", f"{field} must be a string")
    if not value:
        raise InvalidField(field, "REQUIRED", f"{field} is required")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidField(field, "TOO_LONG", f"{field} is longer than {MAX_ID_LENGTH}")
    if _IDENTIFIER.fullmatch(value) is None:
        raise InvalidField(
            field,
            "MALFORMED",
            f"{field} {shown(value)} may hold only visible ASCII characters (! to ~)",
        )
    return value


def check_decimal_text(field: str, text: str) -> None:
    """InvalidField (MALFORMED, TOO_LONG) unless `text` is a plain ASCII decimal."""
    if len(text) > MAX_DECIMAL_CHARS:
        raise InvalidField(
            field, "TOO_LONG", f"{field} is longer than {MAX_DECIMAL_CHARS} characters"
        )
    if _DECIMAL.fullmatch(text) is None:
        raise InvalidField(
            field,
            "MALFORMED",
            f"{field} {shown(text)} is not a decimal number (digits 0-9, one optional '.')",
        )


def check_steps(field: str, steps: int) -> int:
    """`steps` (ticks or lots) when within MAX_STEPS; InvalidField TOO_LARGE otherwise."""
    if steps > MAX_STEPS:
        raise InvalidField(field, "TOO_LARGE", f"{field} is more than {MAX_STEPS} steps")
    return steps


def check_time_ns(field: str, nanos: int) -> int:
    """`nanos` when inside [epoch, 2200-01-01); InvalidField OUT_OF_RANGE otherwise."""
    if not EARLIEST_TIME_NS <= nanos < LATEST_TIME_NS:
        raise InvalidField(
            field,
            "OUT_OF_RANGE",
            f"{field} must be from 1970-01-01T00:00:00Z to before {LATEST_TIME_TEXT}",
        )
    return nanos
