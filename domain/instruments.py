"""Instrument configuration and the exact conversions between decimals and integers.

Inside the engine a price is an integer number of ticks and a quantity an integer number
of lots. These conversions never round: input off the grid is refused with a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from domain.errors import InvalidField
from domain.input_rules import check_decimal_text, check_steps, shown

DecimalInput = str | Decimal


def plain_text(number: Decimal) -> str:
    """A decimal as plain text, never in exponent form ("0.00000005", not "5E-8"): the
    only form `parse_decimal` reads back."""
    return format(number, "f")


def step_formatter(step: Decimal) -> Callable[[int], str]:
    """int -> decimal text scaled like `step`, identical to ``plain_text(value * step)``.

    Steps that are powers of ten (0.01, 0.0001, 1) are formatted with integer arithmetic:
    the replayer writes several such numbers per event, and Decimal arithmetic would be
    most of its work.
    """
    sign, digits, exponent = step.as_tuple()
    if sign == 0 and digits == (1,) and isinstance(exponent, int) and exponent <= 0:
        places = -exponent
        if places == 0:
            return str
        scale = 10**places

        def power_of_ten(value: int) -> str:
            if value < 0:
                return plain_text(value * step)
            whole, fraction = divmod(value, scale)
            return f"{whole}.{fraction:0{places}d}"

        return power_of_ten
    return lambda value: plain_text(value * step)


_NOT_FINITE_TEXTS = frozenset({"nan", "snan", "inf", "infinity", "-nan", "-inf", "-infinity"})


def parse_decimal(value: object, field_name: str) -> Decimal:
    """Parse a decimal given as plain ASCII text (see `domain.input_rules`) or Decimal;
    floats and other types are refused."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, str):
        if not value:
            raise InvalidField(field_name, "MALFORMED", f"{field_name} is empty")
        if value.lower() in _NOT_FINITE_TEXTS:
            raise InvalidField(field_name, "NOT_FINITE", f"{field_name} {value!r} is not finite")
        check_decimal_text(field_name, value)
        number = Decimal(value)
    else:
        # Floats cannot carry exact decimal prices; ints are refused so units stay explicit.
        raise InvalidField(
            field_name, "MALFORMED", f"{field_name} must be a decimal string, got {shown(value)}"
        )
    if not number.is_finite():
        raise InvalidField(field_name, "NOT_FINITE", f"{field_name} {value!r} is not finite")
    return number


def _to_steps(value: object, step: Decimal, field_name: str, grid_reason: str, what: str) -> int:
    number = parse_decimal(value, field_name)
    if number <= 0:
        raise InvalidField(field_name, "NOT_POSITIVE", f"{field_name} {shown(value)} must be > 0")
    try:
        steps, leftover = divmod(number, step)
    except InvalidOperation:
        raise InvalidField(
            field_name, "TOO_LARGE", f"{field_name} {shown(value)} is too large"
        ) from None
    if leftover != 0:
        raise InvalidField(
            field_name, grid_reason, f"{field_name} {value} is not a multiple of the {what} {step}"
        )
    return check_steps(field_name, int(steps))


class InstrumentStatus(StrEnum):
    """What a venue lets happen on an instrument: everything; only cancels; nothing."""

    TRADING = "TRADING"
    CANCEL_ONLY = "CANCEL_ONLY"
    HALTED = "HALTED"


MAX_FEE_BPS = 1_000  # 10%: a larger fee is a configuration mistake, not a business model


@dataclass(frozen=True)
class Instrument:
    """A tradable instrument: its symbol, price step, quantity step and minimum quantity;
    with accounts on, the assets it trades (`base` bought with `quote`) and its maker and
    taker fees in basis points of the traded notional."""

    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    min_quantity: Decimal | None = None
    base: str | None = None
    quote: str | None = None
    maker_fee_bps: int = 0
    taker_fee_bps: int = 0
    # The minimum quantity in lots (0 when there is none); derived, kept for the hot path.
    min_lots: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        if not self.symbol or not isinstance(self.symbol, str):
            raise InvalidField("symbol", "REQUIRED", "an instrument needs a symbol")
        for name in ("tick_size", "lot_size"):
            step = getattr(self, name)
            if not isinstance(step, Decimal):
                object.__setattr__(self, name, parse_decimal(step, name))
                step = getattr(self, name)
            if not step.is_finite() or step <= 0:
                raise InvalidField(name, "NOT_POSITIVE", f"{name} must be a positive decimal")
        if self.min_quantity is not None:
            if not isinstance(self.min_quantity, Decimal):
                object.__setattr__(
                    self, "min_quantity", parse_decimal(self.min_quantity, "min_quantity")
                )
            object.__setattr__(
                self,
                "min_lots",
                _to_steps(
                    self.min_quantity, self.lot_size, "min_quantity", "OFF_LOT_GRID", "lot size"
                ),
            )

        for name in ("maker_fee_bps", "taker_fee_bps"):
            bps = getattr(self, name)
            if isinstance(bps, bool) or not isinstance(bps, int) or not 0 <= bps <= MAX_FEE_BPS:
                raise InvalidField(name, "OUT_OF_RANGE", f"{name} must be 0..{MAX_FEE_BPS}")
        if (self.base is None) != (self.quote is None):
            raise InvalidField("base", "REQUIRED", "an instrument names both base and quote")
        if self.base is not None and self.base == self.quote:
            raise InvalidField("quote", "SAME_AS_BASE", "quote must differ from base")

    def with_assets(self) -> Instrument:
        """The instrument with its base and quote named: as given, or read off a symbol
        like BTC-USD. An instrument that names neither and whose symbol is not BASE-QUOTE
        raises InvalidField (accounts need to know what it trades)."""
        if self.base is not None:
            return self
        base, dash, quote = self.symbol.partition("-")
        if not dash or not base or not quote or "-" in quote:
            raise InvalidField(
                "base",
                "REQUIRED",
                f"instrument {self.symbol} needs base and quote assets (or a BASE-QUOTE symbol)",
            )
        return replace(self, base=base, quote=quote)

    def price_to_ticks(self, value: DecimalInput, field_name: str = "price") -> int:
        """Price text/Decimal -> ticks; raises InvalidField when off grid or not positive."""
        return _to_steps(value, self.tick_size, field_name, "OFF_TICK_GRID", "tick size")

    def ticks_to_price(self, ticks: int) -> Decimal:
        """Ticks -> price, scaled like the tick size (e.g. ``45000.00``)."""
        return ticks * self.tick_size

    def quantity_to_lots(self, value: DecimalInput, field_name: str = "quantity") -> int:
        """Quantity text/Decimal -> lots; raises InvalidField when off grid or not positive."""
        return _to_steps(value, self.lot_size, field_name, "OFF_LOT_GRID", "lot size")

    def lots_to_quantity(self, lots: int) -> Decimal:
        """Lots -> quantity, scaled like the lot size (e.g. ``1.5000``)."""
        return lots * self.lot_size
