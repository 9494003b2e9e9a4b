"""Assets and amounts: an asset's precision, and exact conversions between decimal text
and integer units.

Inside the engine an amount of an asset is an integer number of its smallest unit
(10^-precision): with USD at precision 8, "12.5" is 1_250_000_000 units. These conversions
never round: an amount finer than the asset's unit is refused with a reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Final

from domain.errors import InvalidField
from domain.input_rules import check_identifier, shown
from domain.instruments import parse_decimal, step_formatter

# The precision of an asset nobody configured: an instrument or a transfer that names an
# asset the engine has not met adds it with this precision (the replayer relies on it).
DEFAULT_PRECISION: Final = 8
MAX_PRECISION: Final = 18
# Amounts are bounded so that a single transfer cannot make sums overflow a column.
MAX_AMOUNT_UNITS: Final = 10**30
# The venue's own account: every fee is credited to it.
FEE_ACCOUNT: Final = "venue-fees"
# Basis points: fees are given per 10,000 of the traded notional.
BPS: Final = 10_000
# The events' amounts of money, by the field of the same event that names their asset:
# how the codec and the log contract know which precision writes each.
AMOUNT_ASSET_FIELD: Final[dict[str, str]] = {
    "amount": "asset",
    "base_amount": "base_asset",
    "seller_held_used": "base_asset",
    "quote_amount": "quote_asset",
    "buyer_fee": "quote_asset",
    "seller_fee": "quote_asset",
    "buyer_held_used": "quote_asset",
}


def check_asset(field: str, value: object) -> str:
    """An asset code: an identifier (see `domain.input_rules`), at most 16 characters."""
    code = check_identifier(field, value)
    if len(code) > 16:
        raise InvalidField(field, "TOO_LONG", f"{field} {shown(code)} is longer than 16")
    return code


def check_precision(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidField(field, "MALFORMED", f"{field} must be an integer")
    if not 0 <= value <= MAX_PRECISION:
        raise InvalidField(field, "OUT_OF_RANGE", f"{field} must be 0..{MAX_PRECISION}")
    return value


def unit_of(precision: int) -> Decimal:
    """The smallest amount of an asset with this precision (8 -> 0.00000001)."""
    return Decimal(1).scaleb(-precision)


def amount_to_units(value: object, precision: int, field: str = "amount") -> int:
    """Decimal text -> units; InvalidField when not positive, finer than the unit or too
    large."""
    number = parse_decimal(value, field)
    if number <= 0:
        raise InvalidField(field, "NOT_POSITIVE", f"{field} {shown(value)} must be > 0")
    try:
        units = number.scaleb(precision)
        if units != units.to_integral_value():
            raise InvalidField(
                field,
                "OFF_UNIT_GRID",
                f"{field} {value} has more than {precision} decimal places",
            )
    except InvalidOperation:
        raise InvalidField(field, "TOO_LARGE", f"{field} {shown(value)} is too large") from None
    if units > MAX_AMOUNT_UNITS:
        raise InvalidField(field, "TOO_LARGE", f"{field} {shown(value)} is too large")
    return int(units)


_UNIT_FORMATTERS: dict[int, Callable[[int], str]] = {}


def units_formatter(precision: int) -> Callable[[int], str]:
    """units -> decimal text with exactly `precision` places (cached per precision)."""
    formatter = _UNIT_FORMATTERS.get(precision)
    if formatter is None:
        formatter = _UNIT_FORMATTERS[precision] = step_formatter(unit_of(precision))
    return formatter


def units_to_text(units: int, precision: int) -> str:
    return units_formatter(precision)(units)


def precision_of(assets: Mapping[str, int], asset: str) -> int:
    """The asset's precision; an asset the engine has not met has the default one."""
    return assets.get(asset, DEFAULT_PRECISION)
