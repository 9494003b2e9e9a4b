"""Exact decimal <-> tick/lot conversions: never rounding, refusing with a reason."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.errors import InvalidField
from domain.instruments import Instrument

BTC = Instrument("BTC-USD", Decimal("0.01"), Decimal("0.0001"), Decimal("0.001"))


def test_prices_and_quantities_convert_exactly_both_ways() -> None:
    assert BTC.price_to_ticks("45000.00") == 4_500_000
    assert BTC.price_to_ticks(Decimal("0.01")) == 1
    assert BTC.quantity_to_lots("1.5") == 15_000
    assert str(BTC.ticks_to_price(4_500_001)) == "45000.01"
    assert str(BTC.lots_to_quantity(15_000)) == "1.5000"
    assert BTC.min_lots == 10


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("45000.005", "OFF_TICK_GRID"),
        ("0", "NOT_POSITIVE"),
        ("-1", "NOT_POSITIVE"),
        ("abc", "MALFORMED"),
        ("", "MALFORMED"),
        ("NaN", "NOT_FINITE"),
        ("Infinity", "NOT_FINITE"),
    ],
)
def test_bad_prices_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidField) as caught:
        BTC.price_to_ticks(text)
    assert (caught.value.field, caught.value.reason) == ("price", reason)


def test_off_lot_grid_quantity_is_refused_not_rounded() -> None:
    with pytest.raises(InvalidField) as caught:
        BTC.quantity_to_lots("1.00005")
    assert (caught.value.field, caught.value.reason) == ("quantity", "OFF_LOT_GRID")


def test_floats_are_refused() -> None:
    with pytest.raises(InvalidField) as caught:
        BTC.price_to_ticks(0.1)  # type: ignore[arg-type]
    assert caught.value.reason == "MALFORMED"


def test_a_minimum_quantity_off_the_lot_grid_is_refused() -> None:
    with pytest.raises(InvalidField) as caught:
        Instrument("X", Decimal("1"), Decimal("0.1"), Decimal("0.15"))
    assert (caught.value.field, caught.value.reason) == ("min_quantity", "OFF_LOT_GRID")
