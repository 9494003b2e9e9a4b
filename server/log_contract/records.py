"""Every record that goes into the log, as a typed class (the log's schema, version 1).

A record's class name is its event type in the log. Its fields are the keys of the event's
JSON data, typed: decimals as ``Decimal`` (written as plain text, never ``5E-8``), times as
aware UTC ``datetime`` (RFC 3339 with ``Z``), enums as the domain's enums. The request
records carry the replayer's ``op`` and the engine's results their ``type`` as a tag, so
the JSON is exactly what the log has always held.

Three families:
- requests the command side writes (``OrderPlaceRequested``, ...) and the clock's ticks:
  what the engine runner consumes;
- the engine's results (``OrderAccepted``, ``TradeExecuted``, ...): the domain's events
  with decimals and times instead of ticks, lots and nanoseconds;
- the engine runner's own records (``EngineBatchProcessed``, ``EngineSnapshotTaken``);
- the identities' records (``ApiKeyIssued``, ``ApiKeyRevoked``): the key set the servers
  fold (``server.identity.keyring``); neither the engine nor the projections read them.

A change to a record's fields is a new version: bump ``SCHEMA_VERSIONS`` in
``server.log_contract.mapper`` and add an upcaster there, so an old record still decodes.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from domain.instruments import InstrumentStatus
from domain.orders import OrderType, SelfTradePrevention, Side, TimeInForce


class LogRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Base of every record of the log."""


# ------------------------------------------------------------------ requests and time


class Request(LogRecord, frozen=True, kw_only=True, tag_field="op"):
    """A command the service accepted at its door; the engine decides what it does."""

    user_id: str
    requested_at: datetime


class OrderPlaceRequested(Request, frozen=True, kw_only=True, tag="place"):
    order_id: str
    instrument: str
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    expire_time: datetime | None = None
    post_only: bool = False
    max_slippage_bps: int | None = None
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST
    client_order_id: str = ""


class OrderCancelRequested(Request, frozen=True, kw_only=True, tag="cancel"):
    order_id: str


class OrderAmendRequested(Request, frozen=True, kw_only=True, tag="amend"):
    order_id: str
    instrument: str
    price: Decimal | None = None
    quantity: Decimal | None = None


class CancelAllRequested(Request, frozen=True, kw_only=True, tag="cancel_all"):
    """A user's kill switch: every open order of theirs (of one instrument, if named)."""

    instrument: str | None = None


class DepositRequested(Request, frozen=True, kw_only=True, tag="deposit"):
    """An admin credits `amount` of `asset` to `user_id` (the account credited), once per
    `transfer_id` (the first event of ``transfer-<transfer_id>``). `amount` is written
    with the asset's precision."""

    transfer_id: str
    asset: str
    amount: Decimal


class WithdrawalRequested(Request, frozen=True, kw_only=True, tag="withdraw"):
    """`amount` of `asset` to leave `user_id`'s available balance, once per `transfer_id`."""

    transfer_id: str
    asset: str
    amount: Decimal


class InstrumentStatusRequested(Request, frozen=True, kw_only=True, tag="instrument_status"):
    """A venue control on ``instrument-<symbol>``: `user_id` is the admin's account."""

    symbol: str
    status: InstrumentStatus


class ClockTicked(LogRecord, frozen=True, kw_only=True):
    """Time reaches the engine only through the log, so expiry replays identically."""

    now: datetime


# ------------------------------------------------------------------ the engine's results


class EngineResult(LogRecord, frozen=True, kw_only=True, tag_field="type", tag=True):
    """An event the matching engine emitted, as the log holds it."""


class OrderAccepted(EngineResult, frozen=True, kw_only=True):
    instrument: str
    order_id: str
    user_id: str
    side: Side
    order_type: OrderType
    price: Decimal | None
    quantity: Decimal
    time_in_force: TimeInForce
    post_only: bool
    stp: SelfTradePrevention
    expire_time: datetime | None
    max_slippage_bps: int | None
    stop_price: Decimal | None
    accepted_at: datetime


class OrderRejected(EngineResult, frozen=True, kw_only=True):
    instrument: str | None
    order_id: str
    user_id: str | None
    reason: str
    # None only for a request the engine could not even read (see server.engine_inputs).
    rejected_at: datetime | None


class TradeExecuted(EngineResult, frozen=True, kw_only=True):
    instrument: str
    trade_id: str
    price: Decimal
    quantity: Decimal
    maker_order_id: str
    taker_order_id: str
    taker_side: Side
    maker_user_id: str
    taker_user_id: str
    executed_at: datetime


class OrderPartiallyFilled(EngineResult, frozen=True, kw_only=True):
    instrument: str
    order_id: str
    trade_id: str
    price: Decimal
    quantity: Decimal
    filled_quantity: Decimal
    remaining_quantity: Decimal
    executed_at: datetime


class OrderFilled(EngineResult, frozen=True, kw_only=True):
    instrument: str
    order_id: str
    trade_id: str
    price: Decimal
    quantity: Decimal
    filled_quantity: Decimal
    remaining_quantity: Decimal
    executed_at: datetime


class OrderCancelled(EngineResult, frozen=True, kw_only=True):
    instrument: str
    order_id: str
    reason: str
    cancelled_quantity: Decimal
    filled_quantity: Decimal
    cancelled_at: datetime


class OrderExpired(EngineResult, frozen=True, kw_only=True):
    instrument: str
    order_id: str
    expired_quantity: Decimal
    filled_quantity: Decimal
    expired_at: datetime


class OrderAmended(EngineResult, frozen=True, kw_only=True):
    instrument: str
    order_id: str
    price: Decimal | None
    quantity: Decimal
    remaining_quantity: Decimal
    priority_lost: bool
    amended_at: datetime


class CancelRejected(EngineResult, frozen=True, kw_only=True):
    instrument: str | None
    order_id: str
    reason: str
    rejected_at: datetime | None


class AmendRejected(EngineResult, frozen=True, kw_only=True):
    instrument: str | None
    order_id: str
    reason: str
    rejected_at: datetime | None


class StopTriggered(EngineResult, frozen=True, kw_only=True):
    instrument: str
    order_id: str
    stop_price: Decimal
    last_price: Decimal
    triggered_at: datetime


class LevelChanged(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One price level's new state: quantity and order_count 0 mean the level is gone."""

    side: Side
    price: Decimal
    quantity: Decimal
    order_count: int


class BookLevelsChanged(EngineResult, frozen=True, kw_only=True):
    """The net change one input made to an instrument's resting levels. `sequence` counts
    these per instrument from 1 without a gap, so a reader that applies them in order
    holds the engine's aggregated book, and one that sees a gap knows it missed some."""

    instrument: str
    sequence: int
    levels: tuple[LevelChanged, ...]
    changed_at: datetime


# ------------------------------------------------------------------ the engine runner's own


# ------------------------------------------------------------------ money and venue controls
# Amounts are in the asset's unit, written with its precision ("12.50000000").


class FundsDeposited(EngineResult, frozen=True, kw_only=True):
    transfer_id: str
    user_id: str
    asset: str
    amount: Decimal
    deposited_at: datetime


class FundsWithdrawn(EngineResult, frozen=True, kw_only=True):
    transfer_id: str
    user_id: str
    asset: str
    amount: Decimal
    withdrawn_at: datetime


class TransferRejected(EngineResult, frozen=True, kw_only=True):
    transfer_id: str
    user_id: str
    asset: str
    amount: Decimal
    reason: str
    rejected_at: datetime


class FundsHeld(EngineResult, frozen=True, kw_only=True):
    order_id: str
    user_id: str
    asset: str
    amount: Decimal
    held_at: datetime


class FundsReleased(EngineResult, frozen=True, kw_only=True):
    order_id: str
    user_id: str
    asset: str
    amount: Decimal
    released_at: datetime


class TradeSettled(EngineResult, frozen=True, kw_only=True):
    """A trade's money (see ``domain.events.TradeSettled``): per side, held -= held_used
    and available += held_used - paid + received; both fees go to the fee account."""

    trade_id: str
    instrument: str
    base_asset: str
    quote_asset: str
    buyer_user_id: str
    seller_user_id: str
    buyer_order_id: str
    seller_order_id: str
    base_amount: Decimal
    quote_amount: Decimal
    buyer_fee: Decimal
    seller_fee: Decimal
    buyer_held_used: Decimal
    seller_held_used: Decimal
    settled_at: datetime


class InstrumentStatusChanged(EngineResult, frozen=True, kw_only=True):
    instrument: str
    status: InstrumentStatus
    changed_at: datetime


class InstrumentRejected(EngineResult, frozen=True, kw_only=True):
    """A venue command about an instrument refused (UNKNOWN_INSTRUMENT, ...)."""

    instrument: str
    reason: str


class AssetAdded(EngineResult, frozen=True, kw_only=True):
    asset: str
    precision: int


class AssetRejected(EngineResult, frozen=True, kw_only=True):
    asset: str
    reason: str


class AccountsEnabled(EngineResult, frozen=True, kw_only=True):
    enabled_at: datetime


class AccountsRejected(EngineResult, frozen=True, kw_only=True):
    reason: str
    rejected_at: datetime


class EngineBatchProcessed(LogRecord, frozen=True, kw_only=True):
    """The runner's progress, appended atomically with a batch's results (fencing,
    exactly-once): the last input it consumed and the latest snapshot's version."""

    last_input: str
    inputs: int
    inputs_total: int
    snapshot_version: int | None
    runner_id: str = ""


class EngineSnapshotTaken(LogRecord, frozen=True, kw_only=True):
    """The engine's whole state after the input at `last_input` (``MatchingEngine.snapshot``)."""

    engine: dict[str, Any]
    last_input: str
    inputs_total: int = 0


# ------------------------------------------------------------------ identities


class ApiKeyIssued(LogRecord, frozen=True, kw_only=True):
    """An API key for `user_id` with `scopes` (``read``, ``trade``, ``admin``). Only the
    SHA-256 of its secret is kept: the key's text is shown once, to whoever issued it."""

    key_id: str
    user_id: str
    scopes: tuple[str, ...]
    secret_sha256: str
    issued_at: datetime
    issued_by: str  # key id of the admin key that issued it


class ApiKeyRevoked(LogRecord, frozen=True, kw_only=True):
    key_id: str
    revoked_at: datetime
    revoked_by: str  # key id of the admin key that revoked it


REQUEST_RECORDS: tuple[type[Request], ...] = (
    OrderPlaceRequested,
    OrderCancelRequested,
    OrderAmendRequested,
    CancelAllRequested,
    DepositRequested,
    WithdrawalRequested,
    InstrumentStatusRequested,
)
RESULT_RECORDS: tuple[type[EngineResult], ...] = (
    OrderAccepted,
    OrderRejected,
    TradeExecuted,
    OrderPartiallyFilled,
    OrderFilled,
    OrderCancelled,
    OrderExpired,
    OrderAmended,
    CancelRejected,
    AmendRejected,
    StopTriggered,
    BookLevelsChanged,
    FundsDeposited,
    FundsWithdrawn,
    TransferRejected,
    FundsHeld,
    FundsReleased,
    TradeSettled,
    InstrumentStatusChanged,
    InstrumentRejected,
    AssetAdded,
    AssetRejected,
    AccountsEnabled,
    AccountsRejected,
)
RUNNER_RECORDS: tuple[type[LogRecord], ...] = (EngineBatchProcessed, EngineSnapshotTaken)
IDENTITY_RECORDS: tuple[type[LogRecord], ...] = (ApiKeyIssued, ApiKeyRevoked)
ALL_RECORDS: tuple[type[LogRecord], ...] = (
    *REQUEST_RECORDS,
    ClockTicked,
    *RESULT_RECORDS,
    *RUNNER_RECORDS,
    *IDENTITY_RECORDS,
)
RECORD_TYPES: dict[str, type[LogRecord]] = {cls.__name__: cls for cls in ALL_RECORDS}
