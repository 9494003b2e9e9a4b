"""The read side's value types: what readers return and live feeds push.

Decimals are `Decimal` (exact, as the log carries them), times aware UTC `datetime`s,
sides `"BUY"`/`"SELL"`, statuses the domain's names (`OPEN`, `PARTIALLY_FILLED`, ...,
`TRIGGER_PENDING`); the gRPC servicers translate these to protobuf and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

BUY = "BUY"
SELL = "SELL"


@dataclass(frozen=True, slots=True)
class FillView:
    """One execution of one order."""

    trade_id: str
    price: Decimal
    quantity: Decimal
    liquidity: str  # "MAKER" or "TAKER"
    executed_at: datetime | None


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order as the PostgreSQL view holds it (every field of the proto `Order`)."""

    order_id: str
    client_order_id: str
    user_id: str
    instrument: str
    side: str
    type: str
    price: Decimal | None
    quantity: Decimal
    filled_quantity: Decimal
    average_price: Decimal | None
    status: str
    reason: str
    time_in_force: str
    stop_price: Decimal | None
    post_only: bool
    expire_time: datetime | None
    created_at: datetime
    updated_at: datetime
    fills: tuple[FillView, ...] = ()


@dataclass(frozen=True, slots=True)
class TradeView:
    """One trade (the proto `Trade`, plus the users and the log position)."""

    trade_id: str
    instrument: str
    price: Decimal
    quantity: Decimal
    maker_order_id: str
    taker_order_id: str
    taker_side: str
    executed_at: datetime | None
    maker_user_id: str = ""
    taker_user_id: str = ""
    position: str = ""
    # From the trade's `TradeSettled` (accounts on): each side's fee, in `fee_asset` (the
    # quote). Only the two parties may be shown them; public feeds leave them out.
    buyer_fee: Decimal | None = None
    seller_fee: Decimal | None = None
    fee_asset: str = ""


@dataclass(frozen=True, slots=True)
class PriceLevel:
    """One aggregated level: total resting quantity and number of resting orders."""

    price: Decimal
    quantity: Decimal
    order_count: int


@dataclass(frozen=True, slots=True)
class BookView:
    """An instrument's aggregated book: best bid first, best ask first."""

    instrument: str
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    sequence: int
    last_price: Decimal | None
    status: str = "TRADING"  # the venue control: TRADING, CANCEL_ONLY or HALTED


@dataclass(frozen=True, slots=True)
class LevelChange:
    """The new state of one level; quantity 0 (and order_count 0) means the level is gone."""

    side: str
    price: Decimal
    quantity: Decimal
    order_count: int


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """First message of a book subscription: the book at `sequence`."""

    instrument: str
    sequence: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    position: str
    status: str = "TRADING"  # the instrument's status when the snapshot was taken


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """The level changes caused by one event; sequences are contiguous per instrument."""

    instrument: str
    sequence: int
    changes: tuple[LevelChange, ...]
    position: str


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An order's state after one event (and the trade, when the event is a fill)."""

    order: OrderView
    event_type: str
    trade: TradeView | None
    position: str


# Ledger causes: what changed a balance.
DEPOSIT = "DEPOSIT"
WITHDRAWAL = "WITHDRAWAL"
HOLD = "HOLD"
RELEASE = "RELEASE"
TRADE = "TRADE"
FEE = "FEE"
LEDGER_CAUSES = (DEPOSIT, WITHDRAWAL, HOLD, RELEASE, TRADE, FEE)


@dataclass(frozen=True, slots=True)
class BalanceView:
    """One account's balance in one asset: `available` to use, `held` by open orders."""

    user_id: str
    asset: str
    available: Decimal
    held: Decimal
    updated_at: datetime
    position: str = ""  # the log position of the last change


@dataclass(frozen=True, slots=True)
class LedgerEntryView:
    """One change of one balance, with its cause (DEPOSIT, WITHDRAWAL, HOLD, RELEASE,
    TRADE, FEE) and what caused it (`reference`: a transfer, order or trade id)."""

    entry_id: int
    user_id: str
    asset: str
    cause: str
    available_change: Decimal
    held_change: Decimal
    reference: str
    at: datetime
    position: str


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    """First message of a balance subscription: the user's balances as published."""

    user_id: str
    balances: tuple[BalanceView, ...]
    position: str


@dataclass(frozen=True, slots=True)
class InstrumentStatusView:
    """A venue control's state for an instrument (TRADING, CANCEL_ONLY, HALTED)."""

    instrument: str
    status: str
    updated_at: datetime
    position: str
