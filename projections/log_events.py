"""What the builders read from the log: recorded events, decoded into the log's records.

`LogEvent` is the part of the event store's `RecordedEvent` the builders use, so the pure
reducers can be fed by tests without a store. A reducer never reads an event's data by key:
`record_of` decodes it with the log contract's one mapper (`server.log_contract.mapper`)
into its typed record, and the reducers work with those.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from projections.views import InstrumentStatusView, TradeView
from server.log_contract import layout
from server.log_contract import records as rec
from server.log_contract.mapper import decode_data

# Records that change a view; batches of nothing else are skipped.
PROJECTED_RECORDS: tuple[type[rec.LogRecord], ...] = (
    rec.OrderPlaceRequested,
    rec.OrderAccepted,
    rec.OrderRejected,
    rec.TradeExecuted,
    rec.OrderPartiallyFilled,
    rec.OrderFilled,
    rec.OrderCancelled,
    rec.OrderExpired,
    rec.OrderAmended,
    rec.StopTriggered,
    rec.BookLevelsChanged,
    rec.FundsDeposited,
    rec.FundsWithdrawn,
    rec.FundsHeld,
    rec.FundsReleased,
    rec.TradeSettled,
    rec.InstrumentStatusChanged,
)
PROJECTED_EVENT_TYPES = frozenset(record.__name__ for record in PROJECTED_RECORDS)


class LogEvent(Protocol):
    """A recorded event as the builders see it (the event store's `RecordedEvent`)."""

    @property
    def stream(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def data(self) -> Mapping[str, Any]: ...
    @property
    def metadata(self) -> Mapping[str, Any]: ...
    @property
    def position(self) -> Any: ...
    @property
    def recorded_at(self) -> datetime: ...


def record_of(event: LogEvent) -> rec.LogRecord:
    """The typed record of an event (`UnreadableRecord` names what does not fit)."""
    return decode_data(event.type, event.data, event.metadata)


def position_token(position: Any) -> str:
    """The `LogPosition.to_token()` text of a position (plain `str()` for test positions)."""
    to_token = getattr(position, "to_token", None)
    return str(to_token()) if to_token is not None else str(position)


def order_id_of(event: LogEvent, record: rec.LogRecord) -> str | None:
    """The order an event concerns: its record's `order_id`, else its `order-<id>` stream."""
    order_id: str | None = getattr(record, "order_id", None)
    return order_id or layout.order_id_of_stream(event.stream)


def status_view(changed: rec.InstrumentStatusChanged, position: Any) -> InstrumentStatusView:
    """The read side's status of an `InstrumentStatusChanged` recorded at `position`."""
    return InstrumentStatusView(
        changed.instrument, changed.status.value, changed.changed_at, position_token(position)
    )


def trade_view(executed: rec.TradeExecuted, position: Any) -> TradeView:
    """The read side's trade of a `TradeExecuted` recorded at `position`."""
    return TradeView(
        trade_id=executed.trade_id,
        instrument=executed.instrument,
        price=executed.price,
        quantity=executed.quantity,
        maker_order_id=executed.maker_order_id,
        taker_order_id=executed.taker_order_id,
        taker_side=executed.taker_side.value,
        executed_at=executed.executed_at,
        maker_user_id=executed.maker_user_id,
        taker_user_id=executed.taker_user_id,
        position=position_token(position),
    )
