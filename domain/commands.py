"""Commands the engine accepts (imperative, immutable, integers inside).

Prices are ticks, quantities lots, times integer nanoseconds since the Unix epoch (UTC).
Use `domain.codec.command_from_dict` to build them from decimal text. Frozen
`msgspec.Struct`s like the events (see `domain.events`): one is built per operation, and a
Struct costs about a tenth of a frozen dataclass to build (docs/performance.md).
"""

from __future__ import annotations

import msgspec

from domain.instruments import Instrument
from domain.orders import OrderType, SelfTradePrevention, Side, TimeInForce


class PlaceOrder(msgspec.Struct, frozen=True, gc=False):
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


class CancelOrder(msgspec.Struct, frozen=True, gc=False):
    """Cancel an open order (or a waiting stop)."""

    order_id: str


class AmendOrder(msgspec.Struct, frozen=True, gc=False):
    """FIX cancel/replace: `quantity` is the new TOTAL quantity (filled part included)."""

    order_id: str
    quantity: int | None = None
    price: int | None = None


class CancelAllOrders(msgspec.Struct, frozen=True, gc=False):
    """A user's kill switch: cancel every open order and waiting stop of `user_id`, on
    `instrument` or, when it is None, on every instrument."""

    user_id: str
    instrument: str | None = None


class AdvanceTime(msgspec.Struct, frozen=True, gc=False):
    """Move the engine clock to `now` (ns since epoch); GTD orders due by then expire."""

    now: int


class AddInstrument(msgspec.Struct, frozen=True, gc=False):
    """Open a book for an instrument."""

    instrument: Instrument


Command = PlaceOrder | CancelOrder | AmendOrder | CancelAllOrders | AdvanceTime | AddInstrument
