"""Commands the engine accepts (imperative, immutable, integers inside).

Prices are ticks, quantities lots, times integer nanoseconds since the Unix epoch (UTC).
Use `domain.codec.command_from_dict` to build them from decimal text.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.instruments import Instrument
from domain.orders import OrderType, SelfTradePrevention, Side, TimeInForce


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Place a new order. `price` for LIMIT/STOP_LIMIT; `stop_price` for stops."""

    order_id: str
    user_id: str
    instrument: str
    side: Side
    order_type: OrderType
    quantity: int
    price: int | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    expire_time: int | None = None
    max_slippage_bps: int | None = None
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST
    stop_price: int | None = None


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel an open order (or a waiting stop)."""

    order_id: str


@dataclass(frozen=True, slots=True)
class AmendOrder:
    """FIX cancel/replace: `quantity` is the new TOTAL quantity (filled part included)."""

    order_id: str
    quantity: int | None = None
    price: int | None = None


@dataclass(frozen=True, slots=True)
class CancelAllOrders:
    """A user's kill switch: cancel every open order and waiting stop of `user_id`, on
    `instrument` or, when it is None, on every instrument."""

    user_id: str
    instrument: str | None = None


@dataclass(frozen=True, slots=True)
class AdvanceTime:
    """Move the engine clock to `now` (ns since epoch); GTD orders due by then expire."""

    now: int


@dataclass(frozen=True, slots=True)
class AddInstrument:
    """Open a book for an instrument."""

    instrument: Instrument


Command = PlaceOrder | CancelOrder | AmendOrder | CancelAllOrders | AdvanceTime | AddInstrument
