"""Order vocabulary (sides, types, time in force, self-trade prevention, statuses) and the
engine's internal, mutable record of a live order."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from mypy_extensions import mypyc_attr

if TYPE_CHECKING:
    from domain.accounts import Balance
    from domain.events import OrderAccepted


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


# Statuses after which nothing happens to an order any more.
CLOSED_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


# acyclic: nothing an Order holds leads back to it, so the compiled build need not track
# it for the cycle collector (one fewer cost per order built and freed).
@mypyc_attr(acyclic=True)
class Order:
    """A live order inside the engine (resting, waiting stop, or being matched).

    Mutable on purpose: fills and amends change it in place. Its fixed terms (side, type,
    time in force, options) stay in the `terms` event it was accepted with, so building
    one on the hot path copies only what matching touches. `price` and `quantity` are
    the current ones (an amend changes them; `terms` keeps the original). `live` is True
    while the order sits in a price level's queue; a cancelled order is only flagged and
    its queue drops it lazily (O(1) cancel). An order that loses priority on amend is
    replaced by a fresh copy at the queue's tail (with its `funds`).

    With accounts on, `funds` is the balance the order's hold sits in (quote for a buy,
    base for a sell); None for an order that holds nothing. Kept so that fills and
    releases touch it without a lookup.

    A plain class with `__slots__` rather than a `msgspec.Struct`: in the compiled build
    (see `domain.compiled`) it becomes a native class whose fields the hot path reads
    and writes directly, where a Struct's go through generic attribute lookup.
    """

    __slots__ = (
        "funds",
        "instrument",
        "is_buy",
        "live",
        "order_id",
        "price",
        "quantity",
        "remaining",
        "seq",
        "terms",
        "triggered",
        "user_id",
    )

    def __init__(
        self,
        terms: OrderAccepted,
        order_id: str,
        user_id: str,
        instrument: str,
        is_buy: bool,
        price: int | None,
        quantity: int,
        remaining: int,
        seq: int,
        triggered: bool = False,
        live: bool = False,
        funds: Balance | None = None,
    ) -> None:
        self.terms = terms
        self.order_id = order_id
        self.user_id = user_id
        self.instrument = instrument
        self.is_buy = is_buy
        self.price = price
        self.quantity = quantity
        self.remaining = remaining
        self.seq = seq
        self.triggered = triggered
        self.live = live
        self.funds = funds

    @property
    def filled(self) -> int:
        # Derived: `quantity` is the (amended) total, so filled = total - remaining for
        # every open order, and the hot path saves a write per fill.
        return self.quantity - self.remaining

    @property
    def side(self) -> Side:
        return self.terms.side

    @property
    def order_type(self) -> OrderType:
        return self.terms.order_type

    @property
    def time_in_force(self) -> TimeInForce:
        return self.terms.time_in_force

    @property
    def post_only(self) -> bool:
        return self.terms.post_only

    @property
    def stp(self) -> SelfTradePrevention:
        return self.terms.stp

    @property
    def expire_time(self) -> int | None:
        return self.terms.expire_time

    @property
    def max_slippage_bps(self) -> int | None:
        return self.terms.max_slippage_bps

    @property
    def stop_price(self) -> int | None:
        return self.terms.stop_price
