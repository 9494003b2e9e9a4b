"""How many decimals the CLI shows for each amount, per instrument (from ListInstruments).

- Prices (`price`, `stop_price`, a trade's price, book levels, `last_price`): as many
  decimals as the instrument's tick size (BTC-USD, tick 0.01: `45000.00`).
- Quantities (`quantity`, `filled_quantity`, a trade's quantity, book levels): as many
  decimals as the lot size (BTC-USD, lot 0.0001: `0.0000`, `1.5000`).
- `average_price`: the tick's decimals plus `AVERAGE_PRICE_EXTRA_DIGITS` (2), rounded
  half-even (BTC-USD: `45000.0050` for fills at 45000.00 and 45000.01). An average of fills
  is a quotient that need not end, so it gets one fixed precision, fine enough to tell
  averages a fraction of a tick apart.

Prices and quantities lie on their grids, so showing them at the grid's precision only adds
or drops trailing zeros; a value off its grid, or of an instrument the service did not
list, is shown exactly as the service sent it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import Any, TypeVar

from clients.models import (
    BookSnapshot,
    BookUpdate,
    CommandResult,
    Instrument,
    LevelChange,
    Order,
    OrderBook,
    OrdersPage,
    OrderUpdate,
    PlaceResult,
    PriceLevel,
    Trade,
    TradeEvent,
    TradesPage,
)

AVERAGE_PRICE_EXTRA_DIGITS = 2

Shown = TypeVar("Shown")


def decimal_places(step: Decimal) -> int:
    """Decimals of a grid step: 0.01 -> 2, 0.0001 -> 4, 0.5 -> 1, 5 -> 0."""
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _at_places(value: Decimal, places: int) -> Decimal | None:
    """`value` with exactly `places` decimals, rounded half-even; None if it cannot be."""
    with localcontext() as context:
        context.prec = 80  # quantize fails when the result needs more digits than this
        try:
            return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
        except InvalidOperation:
            return None


@dataclasses.dataclass(frozen=True, slots=True)
class _Places:
    price: int
    quantity: int

    def price_of(self, value: Decimal) -> Decimal:
        return _exact_at(value, self.price)

    def quantity_of(self, value: Decimal) -> Decimal:
        return _exact_at(value, self.quantity)

    def average_price_of(self, value: Decimal) -> Decimal:
        rounded = _at_places(value, self.price + AVERAGE_PRICE_EXTRA_DIGITS)
        return value if rounded is None else rounded


def _exact_at(value: Decimal, places: int) -> Decimal:
    """`value` at `places` decimals when that keeps it equal (on the grid), else as is."""
    shown = _at_places(value, places)
    return shown if shown is not None and shown == value else value


class DisplayPrecision:
    """Rewrites the client's values with each amount at its instrument's precision."""

    def __init__(self, instruments: Iterable[Instrument] = ()) -> None:
        self._places_by_symbol = {
            instrument.symbol: _Places(
                decimal_places(instrument.tick_size), decimal_places(instrument.lot_size)
            )
            for instrument in instruments
        }

    def apply(self, value: Shown) -> Shown:
        """The same value with its amounts at display precision (anything else unchanged)."""
        shown: Any = self._apply(value)
        return shown  # type: ignore[no-any-return]

    def _apply(self, value: Any) -> Any:
        if isinstance(value, Order):
            return self._order(value)
        if isinstance(value, Trade):
            return self._trade(value)
        if isinstance(value, OrderBook):
            places = self._places_by_symbol.get(value.instrument)
            if places is None:
                return value
            last = value.last_price
            return dataclasses.replace(
                value,
                bids=_levels(places, value.bids),
                asks=_levels(places, value.asks),
                last_price=None if last is None else places.price_of(last),
            )
        if isinstance(value, BookSnapshot):
            places = self._places_by_symbol.get(value.instrument)
            if places is None:
                return value
            return dataclasses.replace(
                value, bids=_levels(places, value.bids), asks=_levels(places, value.asks)
            )
        if isinstance(value, BookUpdate):
            places = self._places_by_symbol.get(value.instrument)
            if places is None:
                return value
            return dataclasses.replace(
                value, changes=tuple(_level_change(places, change) for change in value.changes)
            )
        if isinstance(value, TradeEvent):
            return dataclasses.replace(value, trade=self._trade(value.trade))
        if isinstance(value, OrderUpdate):
            trade = None if value.trade is None else self._trade(value.trade)
            return dataclasses.replace(value, order=self._order(value.order), trade=trade)
        if isinstance(value, PlaceResult | CommandResult):
            return dataclasses.replace(value, order=self._order(value.order))
        if isinstance(value, OrdersPage):
            return dataclasses.replace(value, orders=tuple(map(self._order, value.orders)))
        if isinstance(value, TradesPage):
            return dataclasses.replace(value, trades=tuple(map(self._trade, value.trades)))
        if isinstance(value, list | tuple):
            return type(value)(self._apply(item) for item in value)
        if isinstance(value, dict):
            return {key: self._apply(item) for key, item in value.items()}
        return value

    def _order(self, order: Order) -> Order:
        places = self._places_by_symbol.get(order.instrument)
        if places is None:
            return order
        return dataclasses.replace(
            order,
            price=None if order.price is None else places.price_of(order.price),
            stop_price=None if order.stop_price is None else places.price_of(order.stop_price),
            quantity=places.quantity_of(order.quantity),
            filled_quantity=places.quantity_of(order.filled_quantity),
            average_price=(
                None
                if order.average_price is None
                else places.average_price_of(order.average_price)
            ),
        )

    def _trade(self, trade: Trade) -> Trade:
        places = self._places_by_symbol.get(trade.instrument)
        if places is None:
            return trade
        return dataclasses.replace(
            trade, price=places.price_of(trade.price), quantity=places.quantity_of(trade.quantity)
        )


def _levels(places: _Places, levels: tuple[PriceLevel, ...]) -> tuple[PriceLevel, ...]:
    return tuple(
        dataclasses.replace(
            level, price=places.price_of(level.price), quantity=places.quantity_of(level.quantity)
        )
        for level in levels
    )


def _level_change(places: _Places, change: LevelChange) -> LevelChange:
    return dataclasses.replace(
        change, price=places.price_of(change.price), quantity=places.quantity_of(change.quantity)
    )
