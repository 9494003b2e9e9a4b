"""Order vocabulary (sides, types, time in force, self-trade prevention, statuses) and the
engine's internal, mutable record of a live order."""

from __future__ import annotations

from enum import StrEnum

import msgspec


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP_LIMIT = "STOP_LIMIT"
    STOP_MARKET = "STOP_MARKET"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTD = "GTD"


class SelfTradePrevention(StrEnum):
    CANCEL_NEWEST = "CANCEL_NEWEST"
    CANCEL_OLDEST = "CANCEL_OLDEST"
    CANCEL_BOTH = "CANCEL_BOTH"
    NONE = "NONE"


class OrderStatus(StrEnum):
    """Lifecycle of an order. PENDING is the service's (known, not yet seen by the engine)."""

    PENDING = "PENDING"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    TRIGGER_PENDING = "TRIGGER_PENDING"
    TRIGGERED = "TRIGGERED"


class Order(msgspec.Struct, gc=False):
    """A live order inside the engine (resting, waiting stop, or being matched).

    Mutable on purpose: fills and amends change it in place. `live` turns False when the
    order leaves its price level, so the level's queue can drop it lazily (O(1) cancel).
    An order that loses priority on amend is replaced by a fresh copy at the queue's tail.
    """

    order_id: str
    user_id: str
    instrument: str
    side: Side
    is_buy: bool
    order_type: OrderType
    price: int | None
    quantity: int
    remaining: int
    time_in_force: TimeInForce
    post_only: bool
    stp: SelfTradePrevention
    expire_time: int | None
    max_slippage_bps: int | None
    stop_price: int | None
    seq: int
    triggered: bool = False
    live: bool = True

    @property
    def filled(self) -> int:
        # Kept derived: `quantity` is the (amended) total, so filled = total - remaining
        # for every open order, and the hot path saves a write per fill.
        return self.quantity - self.remaining

    @property
    def is_market(self) -> bool:
        return self.order_type is OrderType.MARKET or self.order_type is OrderType.STOP_MARKET

    @property
    def is_waiting_stop(self) -> bool:
        return not self.triggered and (
            self.order_type is OrderType.STOP_LIMIT or self.order_type is OrderType.STOP_MARKET
        )
