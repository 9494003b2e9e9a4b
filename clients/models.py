"""Typed values the Python client returns and accepts: Decimal amounts, enums, aware datetimes.

These are plain frozen dataclasses, independent of protobuf; `clients.conversions` maps them
to and from the wire messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from clients.enums import OrderStatus, OrderType, Scope, SelfTradePrevention, Side, TimeInForce


@dataclass(frozen=True, slots=True)
class NewOrder:
    """What PlaceOrder takes. Amounts are Decimals (or decimal strings), never floats."""

    user_id: str
    instrument: str
    side: Side
    quantity: Decimal | str
    type: OrderType = OrderType.LIMIT
    price: Decimal | str | None = None
    stop_price: Decimal | str | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    expire_time: datetime | None = None
    post_only: bool = False
    max_slippage_bps: int = 0
    stp: SelfTradePrevention = SelfTradePrevention.UNSPECIFIED
    client_order_id: str = ""


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    client_order_id: str
    user_id: str
    instrument: str
    side: Side
    type: OrderType
    price: Decimal | None
    quantity: Decimal
    filled_quantity: Decimal
    average_price: Decimal | None
    status: OrderStatus
    reason: str
    time_in_force: TimeInForce
    created_at: datetime | None
    updated_at: datetime | None
    stop_price: Decimal | None
    post_only: bool
    expire_time: datetime | None

    @property
    def remaining_quantity(self) -> Decimal:
        """Quantity not filled yet (still resting or waiting unless the order is final)."""
        return self.quantity - self.filled_quantity


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: str
    instrument: str
    price: Decimal
    quantity: Decimal
    maker_order_id: str
    taker_order_id: str
    taker_side: Side
    executed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    min_quantity: Decimal | None
    # With accounts (issue 14): what it trades, its fees and the venue control in force.
    base_asset: str = ""
    quote_asset: str = ""
    maker_fee_bps: int = 0
    taker_fee_bps: int = 0
    status: str = "TRADING"


@dataclass(frozen=True, slots=True)
class PriceLevel:
    price: Decimal
    quantity: Decimal
    order_count: int


@dataclass(frozen=True, slots=True)
class OrderBook:
    """GetOrderBook's answer: best levels first on each side."""

    instrument: str
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    sequence: int
    last_price: Decimal | None


@dataclass(frozen=True, slots=True)
class CommandResult:
    """Answer of Cancel/AmendOrder: the order as written and the log position of the write;
    when the call waited for the outcome, the order after the engine's answer, that
    answer's position and, if the engine rejected the request, its reason code."""

    order: Order
    position: str
    rejection_reason: str = ""


@dataclass(frozen=True, slots=True)
class CancelAllResult:
    """Answer of CancelAllOrders: the log position of the request; when the call waited
    for the outcome, the position of the engine's answer and the orders it cancelled."""

    position: str
    cancelled_orders: tuple[Order, ...] = ()


@dataclass(frozen=True, slots=True)
class PlaceResult:
    """Answer of PlaceOrder; `duplicate` when client_order_id matched an earlier order.
    When the call waited for the outcome: the order as the engine left it, and the position
    of the engine's answer."""

    order: Order
    position: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class OrdersPage:
    orders: tuple[Order, ...]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class TradesPage:
    trades: tuple[Trade, ...]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """One message of StreamTrades."""

    trade: Trade
    position: str


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """First message of StreamOrderBook."""

    instrument: str
    sequence: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    position: str


@dataclass(frozen=True, slots=True)
class LevelChange:
    """New state of one price level; quantity 0 means the level is gone."""

    side: Side
    price: Decimal
    quantity: Decimal
    order_count: int


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """A StreamOrderBook message after the snapshot; sequences follow without gap."""

    instrument: str
    sequence: int
    changes: tuple[LevelChange, ...]
    position: str


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One message of StreamOrderUpdates: the order after the change, and the fill if any."""

    order: Order
    event_type: str
    trade: Trade | None
    position: str


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """Answer of IssueApiKey: the key's id and the whole key, the only time it is shown
    (the service keeps a hash). Not in repr, so a logged value does not leak it."""

    key_id: str
    api_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key as ListApiKeys shows it: never its secret. `last_used_at` is when the
    answering server last accepted it (None if never)."""

    key_id: str
    user_id: str
    scopes: tuple[Scope, ...]
    created_at: datetime | None
    last_used_at: datetime | None
    revoked: bool
