"""Commands the engine accepts (imperative, immutable, integers inside).

Prices are ticks, quantities lots, times integer nanoseconds since the Unix epoch (UTC).
Use `domain.codec.command_from_dict` to build them from decimal text. Frozen
`msgspec.Struct`s like the events (see `domain.events`): one is built per operation, and a
Struct costs about a tenth of a frozen dataclass to build (docs/performance.md).
"""

from __future__ import annotations

import msgspec

from domain.instruments import Instrument, InstrumentStatus
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


class AddAsset(msgspec.Struct, frozen=True, gc=False):
    """Make an asset known with its precision (decimal places of its smallest unit)."""

    asset: str
    precision: int


class EnableAccounts(msgspec.Struct, frozen=True, gc=False):
    """Turn balances on: from now on orders hold funds and trades settle them. Only
    before the first order (an engine with open orders holds nothing for them)."""


class Deposit(msgspec.Struct, frozen=True, gc=False):
    """Credit `amount` units of `asset` to `user_id`'s available balance, once per
    `transfer_id` (a repeat is refused as a duplicate, so retries are harmless)."""

    transfer_id: str
    user_id: str
    asset: str
    amount: int


class Withdraw(msgspec.Struct, frozen=True, gc=False):
    """Debit `amount` units of `asset` from `user_id`'s available balance (refused with
    INSUFFICIENT_FUNDS when that is less), once per `transfer_id`."""

    transfer_id: str
    user_id: str
    asset: str
    amount: int


class SetInstrumentStatus(msgspec.Struct, frozen=True, gc=False):
    """A venue control: TRADING, CANCEL_ONLY (new orders and amends refused) or HALTED
    (cancels refused too)."""

    instrument: str
    status: InstrumentStatus


Command = (
    PlaceOrder
    | CancelOrder
    | AmendOrder
    | CancelAllOrders
    | AdvanceTime
    | AddInstrument
    | AddAsset
    | EnableAccounts
    | Deposit
    | Withdraw
    | SetInstrumentStatus
)
