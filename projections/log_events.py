"""What the builders read from the log, and small parsers for the log's value formats.

`LogEvent` is the part of the event store's `RecordedEvent` the builders use, so the pure
reducers can be fed by tests without a store. Event data dicts are `domain.codec`'s
(decimals as strings, times RFC 3339 UTC with 'Z') plus the service's `*Requested` events.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from server.log_contract import layout as streams

# Event types the read side understands: the log contract's names.
ORDER_ACCEPTED = streams.ORDER_ACCEPTED
ORDER_REJECTED = streams.ORDER_REJECTED
TRADE_EXECUTED = streams.TRADE_EXECUTED
ORDER_PARTIALLY_FILLED = streams.ORDER_PARTIALLY_FILLED
ORDER_FILLED = streams.ORDER_FILLED
ORDER_CANCELLED = streams.ORDER_CANCELLED
ORDER_EXPIRED = streams.ORDER_EXPIRED
ORDER_AMENDED = streams.ORDER_AMENDED
CANCEL_REJECTED = streams.CANCEL_REJECTED
AMEND_REJECTED = streams.AMEND_REJECTED
STOP_TRIGGERED = streams.STOP_TRIGGERED
ORDER_PLACE_REQUESTED = streams.ORDER_PLACE_REQUESTED

# Events that change a view; batches of nothing else are skipped.
PROJECTED_EVENT_TYPES = frozenset(
    {
        ORDER_PLACE_REQUESTED,
        ORDER_ACCEPTED,
        ORDER_REJECTED,
        TRADE_EXECUTED,
        ORDER_PARTIALLY_FILLED,
        ORDER_FILLED,
        ORDER_CANCELLED,
        ORDER_EXPIRED,
        ORDER_AMENDED,
        STOP_TRIGGERED,
    }
)


class LogEvent(Protocol):
    """A recorded event as the builders see it (the event store's `RecordedEvent`)."""

    @property
    def stream(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def data(self) -> Mapping[str, Any]: ...
    @property
    def position(self) -> Any: ...
    @property
    def recorded_at(self) -> datetime: ...


def position_token(position: Any) -> str:
    """The `LogPosition.to_token()` text of a position (plain `str()` for test positions)."""
    to_token = getattr(position, "to_token", None)
    return str(to_token()) if to_token is not None else str(position)


def decimal_or_none(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


def decimal_of(value: Any, default: Decimal = Decimal(0)) -> Decimal:
    parsed = decimal_or_none(value)
    return default if parsed is None else parsed


def time_or_none(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return streams.parse_time(str(value))


def order_id_of(event: LogEvent) -> str | None:
    """The order an event concerns: its `order_id`, else the id in its `order-<id>` stream."""
    order_id = event.data.get("order_id")
    if order_id:
        return str(order_id)
    return streams.order_id_of_stream(event.stream)
