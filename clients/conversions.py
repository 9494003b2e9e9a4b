"""Exact conversions between the client's typed values and the protobuf wire messages.

Amounts travel as decimal strings: `decimal_to_wire` never rounds and never uses floats (a
float argument is refused, since 0.1 is not 0.1), and keeps the caller's scale ("45000.00").
Times travel as google.protobuf.Timestamp and come back as timezone-aware UTC datetimes; an
unset Timestamp is None.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from google.protobuf.timestamp_pb2 import Timestamp

from clients.enums import OrderStatus, OrderType, Scope, Side, TimeInForce, from_wire, to_wire
from clients.generated.exchange.v1 import (
    admin_service_pb2,
    market_data_service_pb2,
    order_command_service_pb2,
    order_query_service_pb2,
    types_pb2,
)
from clients.models import (
    ApiKey,
    BookSnapshot,
    BookUpdate,
    CancelAllResult,
    CommandResult,
    Instrument,
    LevelChange,
    NewOrder,
    Order,
    OrderBook,
    OrderUpdate,
    PlaceResult,
    PriceLevel,
    Trade,
    TradeEvent,
)


def parse_decimal(text: str | Decimal | int) -> Decimal:
    """A finite Decimal from a decimal string (or Decimal/int); ValueError otherwise."""
    if isinstance(text, bool | float):
        raise TypeError(f"amounts must be Decimal or decimal strings, not {type(text).__name__}")
    try:
        value = text if isinstance(text, Decimal) else Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal number") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite decimal number")
    return value


def decimal_to_wire(value: Decimal | str | int | None) -> str:
    """The wire text of an amount: "" for None; a string is sent as given (the service is
    the one judge of amounts and names the field and reason when it refuses one); a Decimal
    or int in plain notation with its scale kept."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    # "f" keeps the scale and never switches to exponent notation ("1E+3" -> "1000").
    return format(parse_decimal(value), "f")


def decimal_from_wire(text: str) -> Decimal | None:
    """The Decimal of a wire amount; None for the empty string (field not set)."""
    return parse_decimal(text) if text else None


def required_decimal_from_wire(text: str) -> Decimal:
    """Like decimal_from_wire, for amounts that are always present (empty reads as 0)."""
    return parse_decimal(text) if text else Decimal(0)


def datetime_to_wire(moment: datetime) -> Timestamp:
    """A Timestamp of an aware datetime; naive datetimes are refused (ambiguous zone)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; use an aware datetime")
    timestamp = Timestamp()
    timestamp.FromDatetime(moment.astimezone(UTC))
    return timestamp


def datetime_from_wire(timestamp: Timestamp) -> datetime:
    return timestamp.ToDatetime(tzinfo=UTC)


def new_order_to_wire(order: NewOrder) -> order_command_service_pb2.PlaceOrderRequest:
    request = order_command_service_pb2.PlaceOrderRequest(
        user_id=order.user_id,
        instrument=order.instrument,
        side=to_wire(order.side),  # type: ignore[arg-type]
        type=to_wire(order.type),  # type: ignore[arg-type]
        price=decimal_to_wire(order.price),
        quantity=decimal_to_wire(order.quantity),
        stop_price=decimal_to_wire(order.stop_price),
        time_in_force=to_wire(order.time_in_force),  # type: ignore[arg-type]
        post_only=order.post_only,
        max_slippage_bps=order.max_slippage_bps,
        stp=to_wire(order.stp),  # type: ignore[arg-type]
        client_order_id=order.client_order_id,
    )
    if order.expire_time is not None:
        request.expire_time.CopyFrom(datetime_to_wire(order.expire_time))
    return request


def order_from_wire(message: types_pb2.Order) -> Order:
    return Order(
        order_id=message.order_id,
        client_order_id=message.client_order_id,
        user_id=message.user_id,
        instrument=message.instrument,
        side=from_wire(Side, message.side),
        type=from_wire(OrderType, message.type),
        price=decimal_from_wire(message.price),
        quantity=required_decimal_from_wire(message.quantity),
        filled_quantity=required_decimal_from_wire(message.filled_quantity),
        average_price=decimal_from_wire(message.average_price),
        status=from_wire(OrderStatus, message.status),
        reason=message.reason,
        time_in_force=from_wire(TimeInForce, message.time_in_force),
        created_at=(
            datetime_from_wire(message.created_at) if message.HasField("created_at") else None
        ),
        updated_at=(
            datetime_from_wire(message.updated_at) if message.HasField("updated_at") else None
        ),
        stop_price=decimal_from_wire(message.stop_price),
        post_only=message.post_only,
        expire_time=(
            datetime_from_wire(message.expire_time) if message.HasField("expire_time") else None
        ),
    )


def trade_from_wire(message: types_pb2.Trade) -> Trade:
    return Trade(
        trade_id=message.trade_id,
        instrument=message.instrument,
        price=required_decimal_from_wire(message.price),
        quantity=required_decimal_from_wire(message.quantity),
        maker_order_id=message.maker_order_id,
        taker_order_id=message.taker_order_id,
        taker_side=from_wire(Side, message.taker_side),
        executed_at=(
            datetime_from_wire(message.executed_at) if message.HasField("executed_at") else None
        ),
    )


def instrument_from_wire(message: types_pb2.Instrument) -> Instrument:
    return Instrument(
        symbol=message.symbol,
        tick_size=required_decimal_from_wire(message.tick_size),
        lot_size=required_decimal_from_wire(message.lot_size),
        min_quantity=decimal_from_wire(message.min_quantity),
        base_asset=message.base_asset,
        quote_asset=message.quote_asset,
        maker_fee_bps=message.maker_fee_bps,
        taker_fee_bps=message.taker_fee_bps,
        # A service from before venue controls sends none: its instruments trade.
        status=types_pb2.InstrumentStatus.Name(message.status).removeprefix("INSTRUMENT_STATUS_")
        if message.status
        else "TRADING",
    )


def price_level_from_wire(message: types_pb2.PriceLevel) -> PriceLevel:
    return PriceLevel(
        price=required_decimal_from_wire(message.price),
        quantity=required_decimal_from_wire(message.quantity),
        order_count=message.order_count,
    )


def order_book_from_wire(message: order_query_service_pb2.GetOrderBookResponse) -> OrderBook:
    return OrderBook(
        instrument=message.instrument,
        bids=tuple(price_level_from_wire(level) for level in message.bids),
        asks=tuple(price_level_from_wire(level) for level in message.asks),
        sequence=message.sequence,
        last_price=decimal_from_wire(message.last_price),
    )


def place_result_from_wire(message: order_command_service_pb2.PlaceOrderResponse) -> PlaceResult:
    return PlaceResult(
        order=order_from_wire(message.order),
        position=message.position,
        duplicate=message.duplicate,
    )


def cancel_all_result_from_wire(
    message: order_command_service_pb2.CancelAllOrdersResponse,
) -> CancelAllResult:
    return CancelAllResult(
        position=message.position,
        cancelled_orders=tuple(order_from_wire(order) for order in message.cancelled_orders),
    )


def command_result_from_wire(
    message: order_command_service_pb2.CancelOrderResponse
    | order_command_service_pb2.AmendOrderResponse,
) -> CommandResult:
    return CommandResult(
        order=order_from_wire(message.order),
        position=message.position,
        rejection_reason=message.rejection_reason,
    )


def trade_event_from_wire(message: market_data_service_pb2.StreamTradesResponse) -> TradeEvent:
    return TradeEvent(trade=trade_from_wire(message.trade), position=message.position)


def book_message_from_wire(
    message: market_data_service_pb2.StreamOrderBookResponse,
) -> BookSnapshot | BookUpdate:
    """The snapshot or the incremental update a StreamOrderBook message holds."""
    if message.WhichOneof("kind") == "snapshot":
        return BookSnapshot(
            instrument=message.instrument,
            sequence=message.sequence,
            bids=tuple(price_level_from_wire(level) for level in message.snapshot.bids),
            asks=tuple(price_level_from_wire(level) for level in message.snapshot.asks),
            position=message.position,
        )
    return BookUpdate(
        instrument=message.instrument,
        sequence=message.sequence,
        changes=tuple(
            LevelChange(
                side=from_wire(Side, change.side),
                price=required_decimal_from_wire(change.price),
                quantity=required_decimal_from_wire(change.quantity),
                order_count=change.order_count,
            )
            for change in message.update.changes
        ),
        position=message.position,
    )


def order_update_from_wire(
    message: market_data_service_pb2.StreamOrderUpdatesResponse,
) -> OrderUpdate:
    return OrderUpdate(
        order=order_from_wire(message.order),
        event_type=message.event_type,
        trade=trade_from_wire(message.trade) if message.HasField("trade") else None,
        position=message.position,
    )


def api_key_from_wire(message: admin_service_pb2.ApiKeyInfo) -> ApiKey:
    return ApiKey(
        key_id=message.key_id,
        user_id=message.user_id,
        scopes=tuple(from_wire(Scope, scope) for scope in message.scopes),
        created_at=(
            datetime_from_wire(message.created_at) if message.HasField("created_at") else None
        ),
        last_used_at=(
            datetime_from_wire(message.last_used_at) if message.HasField("last_used_at") else None
        ),
        revoked=message.revoked,
    )
