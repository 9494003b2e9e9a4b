"""The HTTP API's JSON bodies as msgspec structs (camelCase on the wire), and the read
side's values rendered into them.

These structs are the one description of the bodies: requests are decoded into them and
the OpenAPI document's schemas are generated from them (``server.http.openapi``). Decimals
go out as strings, exactly as the log holds them; they come in as strings or JSON numbers
(the number's own text is kept, never rounded through a float). Times are RFC 3339, UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec

from domain.instruments import Instrument
from domain.orders import OrderStatus as Status
from domain.orders import OrderType, Side, TimeInForce
from domain.orders import SelfTradePrevention as Stp
from projections.views import BookSnapshot, BookUpdate, BookView, OrderUpdate, PriceLevel
from server.api_names import api_status

# A decimal as the client sends it: a string ("45000.00") or a JSON number (45000.00).
DecimalIn = Annotated[
    Decimal,
    msgspec.Meta(
        extra_json_schema={
            "type": ["string", "number"],
            "description": "a decimal, as a string or a JSON number (kept exactly)",
            "examples": ["45000.00"],
        }
    ),
]
# A decimal as the API answers it: always a string.
DecimalOut = Annotated[str, msgspec.Meta(extra_json_schema={"examples": ["45000.00"]})]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]


class Api(msgspec.Struct, rename="camel", forbid_unknown_fields=False, omit_defaults=False):
    """Every body: camelCase field names."""


# -- requests ----------------------------------------------------------------------------


class PlaceOrderBody(Api, kw_only=True):
    """The seed's order (`type` is the side, `asset` the instrument); a GTC limit order
    unless the optional fields say otherwise."""

    asset: str
    type: Side
    quantity: DecimalIn
    price: DecimalIn | None = None
    user_id: str = ""
    order_type: OrderType = OrderType.LIMIT
    time_in_force: TimeInForce = TimeInForce.GTC
    stop_price: DecimalIn | None = None
    expire_time: Timestamp | None = None
    post_only: bool = False
    max_slippage_bps: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] | None = None
    stp: Stp | None = None
    client_order_id: str | None = None
    wait_for_outcome: bool = False


class AmendOrderBody(Api, kw_only=True):
    """A new price and/or quantity for an open order (FIX-style: a smaller quantity keeps
    the order's place in the queue)."""

    price: DecimalIn | None = None
    quantity: DecimalIn | None = None
    user_id: str = ""
    wait_for_outcome: bool = False


# -- answers -----------------------------------------------------------------------------


class OrderBody(Api):
    order_id: str
    client_order_id: str
    user_id: str
    asset: str
    type: Side
    order_type: OrderType
    price: DecimalOut | None
    quantity: DecimalOut
    filled_quantity: DecimalOut
    average_price: DecimalOut | None
    status: Status
    reason: str
    time_in_force: TimeInForce
    stop_price: DecimalOut | None
    post_only: bool
    expire_time: datetime | None
    created_at: datetime
    updated_at: datetime


class CommandAnswerBody(OrderBody):
    """The order as written (PENDING), or as the engine left it when the caller waited;
    `position` is the log position to read it back with (`minPosition`)."""

    position: str
    duplicate: bool
    rejection_reason: str


class OrderPage(Api):
    orders: list[OrderBody]
    next_page_token: str


class CancelAllBody(Api):
    position: str
    cancelled_orders: list[OrderBody]


class LevelBody(Api):
    price: DecimalOut
    quantity: DecimalOut
    order_count: int


class BookBody(Api):
    instrument: str
    bids: list[LevelBody]
    asks: list[LevelBody]
    sequence: int
    last_price: DecimalOut | None


class TradeBody(Api):
    trade_id: str
    instrument: str
    price: DecimalOut
    quantity: DecimalOut
    maker_order_id: str
    taker_order_id: str
    taker_side: Side
    executed_at: datetime | None
    position: str


class TradePage(Api):
    trades: list[TradeBody]
    next_page_token: str


class InstrumentBody(Api):
    symbol: str
    tick_size: DecimalOut
    lot_size: DecimalOut
    min_quantity: DecimalOut | None


class InstrumentList(Api):
    instruments: list[InstrumentBody]


class Violation(Api):
    field: str
    reason: str
    description: str


class ErrorDetail(Api):
    code: str
    message: str
    field: str | None = None
    reason: str | None = None
    violations: list[Violation] = msgspec.field(default_factory=list)


class ErrorBody(Api):
    error: ErrorDetail


# -- live feeds (the `data` of each server-sent event) ------------------------------------


class BookSnapshotEvent(Api):
    instrument: str
    sequence: int
    bids: list[LevelBody]
    asks: list[LevelBody]
    position: str


class LevelChangeBody(Api):
    side: Side
    price: DecimalOut
    quantity: DecimalOut
    order_count: int


class BookUpdateEvent(Api):
    instrument: str
    sequence: int
    changes: list[LevelChangeBody]
    position: str


class OrderUpdateEvent(Api):
    order: OrderBody
    event_type: str
    trade: TradeBody | None
    position: str


# -- the read side's values as bodies ----------------------------------------------------


def decimal_out(value: Decimal | None) -> str | None:
    """A decimal as a plain string ("45000.50", never "4.500050E+4"); None stays None."""
    return None if value is None else format(value, "f")


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def order_body(order: Any) -> OrderBody:
    """An order (``OrderView`` or the write side's ``OrderState``) as the API shows it."""
    return OrderBody(**_order_fields(order))


def _order_fields(order: Any) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id or "",
        "user_id": order.user_id,
        "asset": order.instrument,
        "type": Side(order.side),
        "order_type": OrderType(order.type),
        "price": decimal_out(order.price),
        "quantity": format(order.quantity, "f"),
        "filled_quantity": format(order.filled_quantity, "f"),
        "average_price": decimal_out(order.average_price),
        "status": Status(api_status(order.status)),
        "reason": order.reason or "",
        "time_in_force": TimeInForce(order.time_in_force),
        "stop_price": decimal_out(order.stop_price),
        "post_only": bool(order.post_only),
        "expire_time": _utc(order.expire_time),
        "created_at": _utc(order.created_at),
        "updated_at": _utc(order.updated_at),
    }


def command_answer_body(
    order: Any, position: str, duplicate: bool, rejection_reason: str
) -> CommandAnswerBody:
    return CommandAnswerBody(
        **_order_fields(order),
        position=position,
        duplicate=duplicate,
        rejection_reason=rejection_reason,
    )


def level_body(level: PriceLevel) -> LevelBody:
    return LevelBody(format(level.price, "f"), format(level.quantity, "f"), level.order_count)


def book_body(book: BookView) -> BookBody:
    return BookBody(
        instrument=book.instrument,
        bids=[level_body(level) for level in book.bids],
        asks=[level_body(level) for level in book.asks],
        sequence=book.sequence,
        last_price=decimal_out(book.last_price),
    )


def trade_body(trade: Any) -> TradeBody:
    return TradeBody(
        trade_id=trade.trade_id,
        instrument=trade.instrument,
        price=format(trade.price, "f"),
        quantity=format(trade.quantity, "f"),
        maker_order_id=trade.maker_order_id,
        taker_order_id=trade.taker_order_id,
        taker_side=Side(trade.taker_side),
        executed_at=_utc(trade.executed_at),
        position=trade.position,
    )


def instrument_body(instrument: Instrument) -> InstrumentBody:
    return InstrumentBody(
        symbol=instrument.symbol,
        tick_size=format(instrument.tick_size, "f"),
        lot_size=format(instrument.lot_size, "f"),
        min_quantity=decimal_out(instrument.min_quantity),
    )


def book_event(item: BookSnapshot | BookUpdate) -> BookSnapshotEvent | BookUpdateEvent:
    if isinstance(item, BookSnapshot):
        return BookSnapshotEvent(
            instrument=item.instrument,
            sequence=item.sequence,
            bids=[level_body(level) for level in item.bids],
            asks=[level_body(level) for level in item.asks],
            position=item.position,
        )
    return BookUpdateEvent(
        instrument=item.instrument,
        sequence=item.sequence,
        changes=[
            LevelChangeBody(
                side=Side(change.side),
                price=format(change.price, "f"),
                quantity=format(change.quantity, "f"),
                order_count=change.order_count,
            )
            for change in item.changes
        ],
        position=item.position,
    )


def order_update_event(update: OrderUpdate) -> OrderUpdateEvent:
    return OrderUpdateEvent(
        order=order_body(update.order),
        event_type=update.event_type,
        trade=None if update.trade is None else trade_body(update.trade),
        position=update.position,
    )
