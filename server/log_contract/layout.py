"""The log layout: which stream holds which events, and the service's own event types.

Every part that reads or writes the log names streams and event types through this module
so the layout lives in one place:

- ``order-<order_id>``: the command service appends ``OrderPlaceRequested`` (expected version
  NO_STREAM, so an order id is taken once), ``OrderCancelRequested`` and
  ``OrderAmendRequested``; the engine runner appends every engine result concerning that
  order (``OrderAccepted``, ``OrderRejected``, fills, ``OrderCancelled``, ``OrderExpired``,
  ``OrderAmended``, ``CancelRejected``, ``AmendRejected``, ``StopTriggered``, ...).
- ``trades-<instrument>``: ``TradeExecuted``, appended by the engine runner.
- ``book-<instrument>``: ``BookLevelsChanged``, the engine's sequence-numbered level deltas,
  appended by the engine runner (the stream keeps their sequence order).
- ``clock``: ``ClockTicked {"now": RFC 3339}``, appended by the service clock; time reaches
  the engine only through the log so GTD expiry replays identically.
- ``engine-<shard>``: the engine runner's progress stream (``EngineBatchProcessed``), appended
  in the same atomic append as the results of each input batch at an exact expected version:
  it fences off a second runner and records the last input consumed (exactly-once).
- ``engine-snapshot-<shard>``: ``EngineSnapshotTaken``, the engine state after some batch, so
  a restart loads the snapshot and replays only the tail.
- ``transfer-<transfer_id>``: a deposit's or withdrawal's request (expected version
  NO_STREAM, so a transfer id is taken once) and the engine's ``FundsDeposited``,
  ``FundsWithdrawn`` or ``TransferRejected``.
- ``instrument-<instrument>``: venue controls (``InstrumentStatusChanged``, or
  ``InstrumentRejected``) and their requests.
- ``venue``: ``AssetAdded``, ``AccountsEnabled`` and their refusals.
- The money of orders goes with them: ``FundsHeld`` and ``FundsReleased`` on the order's
  stream, ``TradeSettled`` on ``trades-<instrument>`` right after its trade.
- ``api-key-<key_id>``: ``ApiKeyIssued`` (expected version NO_STREAM, so a key id is taken
  once) then at most one ``ApiKeyRevoked``; every server folds them into its key ring.

Data of the ``*Requested`` events is the replayer's command dict (``domain.codec`` shapes:
``op``, decimals as strings, times RFC 3339 UTC with ``Z``) plus ``user_id``,
``client_order_id`` (place only) and ``requested_at``.

Metadata keys: ``correlation_id``, ``causation_id`` and, when tracing, ``traceparent``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from server.log_contract import records
from server.log_contract.mapper import format_log_time

ORDER_STREAM_PREFIX: Final = "order-"
TRADES_STREAM_PREFIX: Final = "trades-"
BOOK_STREAM_PREFIX: Final = "book-"
CLOCK_STREAM: Final = "clock"
ENGINE_STREAM_PREFIX: Final = "engine-"
ENGINE_SNAPSHOT_STREAM_PREFIX: Final = "engine-snapshot-"
CANCEL_ALL_STREAM_PREFIX: Final = "cancel-all-"  # a user's CancelAllRequested events
API_KEY_STREAM_PREFIX: Final = "api-key-"
TRANSFER_STREAM_PREFIX: Final = "transfer-"
INSTRUMENT_STREAM_PREFIX: Final = "instrument-"
VENUE_STREAM: Final = "venue"

# Event types: each is its record class's name (server.log_contract.records), never
# written out by hand elsewhere.
ORDER_PLACE_REQUESTED: Final = records.OrderPlaceRequested.__name__
ORDER_CANCEL_REQUESTED: Final = records.OrderCancelRequested.__name__
ORDER_AMEND_REQUESTED: Final = records.OrderAmendRequested.__name__
CANCEL_ALL_REQUESTED: Final = records.CancelAllRequested.__name__
CLOCK_TICKED: Final = records.ClockTicked.__name__
ENGINE_BATCH_PROCESSED: Final = records.EngineBatchProcessed.__name__
ENGINE_SNAPSHOT_TAKEN: Final = records.EngineSnapshotTaken.__name__
ORDER_ACCEPTED: Final = records.OrderAccepted.__name__
ORDER_REJECTED: Final = records.OrderRejected.__name__
TRADE_EXECUTED: Final = records.TradeExecuted.__name__
ORDER_PARTIALLY_FILLED: Final = records.OrderPartiallyFilled.__name__
ORDER_FILLED: Final = records.OrderFilled.__name__
ORDER_CANCELLED: Final = records.OrderCancelled.__name__
ORDER_EXPIRED: Final = records.OrderExpired.__name__
ORDER_AMENDED: Final = records.OrderAmended.__name__
CANCEL_REJECTED: Final = records.CancelRejected.__name__
AMEND_REJECTED: Final = records.AmendRejected.__name__
STOP_TRIGGERED: Final = records.StopTriggered.__name__
BOOK_LEVELS_CHANGED: Final = records.BookLevelsChanged.__name__
DEPOSIT_REQUESTED: Final = records.DepositRequested.__name__
WITHDRAWAL_REQUESTED: Final = records.WithdrawalRequested.__name__
INSTRUMENT_STATUS_REQUESTED: Final = records.InstrumentStatusRequested.__name__
ACCOUNTS_ENABLED: Final = records.AccountsEnabled.__name__
FUNDS_HELD: Final = records.FundsHeld.__name__
TRADE_SETTLED: Final = records.TradeSettled.__name__
FUNDS_DEPOSITED: Final = records.FundsDeposited.__name__
FUNDS_WITHDRAWN: Final = records.FundsWithdrawn.__name__
TRANSFER_REJECTED: Final = records.TransferRejected.__name__
ASSET_ADDED: Final = records.AssetAdded.__name__
API_KEY_ISSUED: Final = records.ApiKeyIssued.__name__
API_KEY_REVOKED: Final = records.ApiKeyRevoked.__name__
API_KEY_EVENT_TYPES: Final = (API_KEY_ISSUED, API_KEY_REVOKED)

# What the engine runner consumes: requests on order streams, users' cancel-all requests,
# transfers, venue controls and clock ticks.
ENGINE_INPUT_STREAM_PREFIXES: Final = (
    ORDER_STREAM_PREFIX,
    CANCEL_ALL_STREAM_PREFIX,
    TRANSFER_STREAM_PREFIX,
    INSTRUMENT_STREAM_PREFIX,
    CLOCK_STREAM,
)
ENGINE_INPUT_EVENT_TYPES: Final = (
    ORDER_PLACE_REQUESTED,
    ORDER_CANCEL_REQUESTED,
    ORDER_AMEND_REQUESTED,
    CANCEL_ALL_REQUESTED,
    DEPOSIT_REQUESTED,
    WITHDRAWAL_REQUESTED,
    INSTRUMENT_STATUS_REQUESTED,
    CLOCK_TICKED,
)
REQUEST_EVENT_TYPES: Final = (
    ORDER_PLACE_REQUESTED,
    ORDER_CANCEL_REQUESTED,
    ORDER_AMEND_REQUESTED,
    CANCEL_ALL_REQUESTED,
    DEPOSIT_REQUESTED,
    WITHDRAWAL_REQUESTED,
    INSTRUMENT_STATUS_REQUESTED,
)

# Metadata keys.
CORRELATION_ID: Final = "correlation_id"
CAUSATION_ID: Final = "causation_id"
TRACEPARENT: Final = "traceparent"


def order_stream(order_id: str) -> str:
    return ORDER_STREAM_PREFIX + order_id


def cancel_all_stream(user_id: str) -> str:
    return CANCEL_ALL_STREAM_PREFIX + user_id


def order_id_of_stream(stream: str) -> str | None:
    """The order id of an ``order-<id>`` stream, or None for any other stream."""
    if stream.startswith(ORDER_STREAM_PREFIX):
        return stream[len(ORDER_STREAM_PREFIX) :]
    return None


def transfer_stream(transfer_id: str) -> str:
    return TRANSFER_STREAM_PREFIX + transfer_id


def instrument_stream(instrument: str) -> str:
    return INSTRUMENT_STREAM_PREFIX + instrument


def api_key_stream(key_id: str) -> str:
    return API_KEY_STREAM_PREFIX + key_id


def trades_stream(instrument: str) -> str:
    return TRADES_STREAM_PREFIX + instrument


def book_stream(instrument: str) -> str:
    return BOOK_STREAM_PREFIX + instrument


def engine_stream(shard: str) -> str:
    return ENGINE_STREAM_PREFIX + shard


def engine_snapshot_stream(shard: str) -> str:
    return ENGINE_SNAPSHOT_STREAM_PREFIX + shard


# The log's one time format (server.log_contract.mapper writes every record with it).
format_time = format_log_time


def parse_time(text: str) -> datetime:
    """Inverse of format_time; accepts any RFC 3339 offset and returns an aware UTC time."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
