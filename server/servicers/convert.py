"""Protobuf <-> the log's vocabulary: enum names, decimal strings, timestamps.

Order and trade messages are built from any object with the proto's field names (the
write side's ``OrderState`` and the read side's ``OrderView``/``TradeView`` both qualify).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from clients.generated.exchange.v1 import order_command_service_pb2 as commands_pb2
from clients.generated.exchange.v1 import types_pb2
from server.api_names import api_status
from server.commands import PlaceOrderInput
from server.errors import InvalidArgument
from server.request_checks import checked_time

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

# A proto enum's number type (mypy-protobuf makes one per enum).
_V = TypeVar("_V", bound=int)

_SIDE_NAMES = {types_pb2.SIDE_BUY: "BUY", types_pb2.SIDE_SELL: "SELL"}
_SIDE_VALUES = {name: value for value, name in _SIDE_NAMES.items()}


def _enum_suffixes(enum: _EnumTypeWrapper[_V], prefix: str) -> dict[_V, str]:
    return {
        number: name[len(prefix) :]
        for name, number in enum.items()
        if not name.endswith("_UNSPECIFIED")
    }


_TYPE_NAMES = _enum_suffixes(types_pb2.OrderType, "ORDER_TYPE_")
_TIF_NAMES = _enum_suffixes(types_pb2.TimeInForce, "TIME_IN_FORCE_")
_STP_NAMES = _enum_suffixes(types_pb2.SelfTradePrevention, "SELF_TRADE_PREVENTION_")
_STATUS_NAMES = _enum_suffixes(types_pb2.OrderStatus, "ORDER_STATUS_")
_TYPE_VALUES = {name: value for value, name in _TYPE_NAMES.items()}
_TIF_VALUES = {name: value for value, name in _TIF_NAMES.items()}
STATUS_VALUES = {name: value for value, name in _STATUS_NAMES.items()}
# Statuses the APIs show under another name (a triggered stop is OPEN: server.api_names).
STATUS_VALUES.setdefault("TRIGGERED", STATUS_VALUES[api_status("TRIGGERED")])


def side_value(name: str) -> types_pb2.Side.ValueType:
    return _SIDE_VALUES.get(name, types_pb2.SIDE_UNSPECIFIED)


def _known(field: str, names: dict[_V, str], value: _V) -> str | None:
    """The name of an enum number: None for 0 (unspecified), refused when unknown (proto3
    keeps numbers it has no name for, so a client can send any)."""
    if value == 0:
        return None
    name = names.get(value)
    if name is None:
        raise InvalidArgument.of(field, "MALFORMED", f"{field} {value} is not a known value")
    return name


def status_name(value: types_pb2.OrderStatus.ValueType) -> str | None:
    return _known("status", _STATUS_NAMES, value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp_of(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    # Timestamp.FromDatetime's seconds and nanos, by timedelta arithmetic rather than
    # utctimetuple() and calendar.timegm: every order answered converts two or three.
    since_epoch = moment.astimezone(UTC) - _EPOCH
    return Timestamp(
        seconds=since_epoch.days * 86_400 + since_epoch.seconds,
        nanos=since_epoch.microseconds * 1000,
    )


def datetime_of(field: str, stamp: Timestamp) -> datetime:
    return checked_time(field, stamp.seconds, stamp.nanos)


def decimal_text(value: Decimal | str | None) -> str:
    """A decimal as a plain string ("45000.5", never "4.50005E+4")."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return format(value, "f")


def place_input(request: commands_pb2.PlaceOrderRequest) -> PlaceOrderInput:
    """The request in the command handlers' terms; unknown enum numbers and timestamps no
    reader of the log could hold are refused here (the rest is checked by the handlers)."""
    return PlaceOrderInput(
        user_id=request.user_id,
        instrument=request.instrument,
        side=_known("side", _SIDE_NAMES, request.side),
        type=_known("type", _TYPE_NAMES, request.type),
        quantity=request.quantity,
        price=request.price or None,
        stop_price=request.stop_price or None,
        time_in_force=_known("time_in_force", _TIF_NAMES, request.time_in_force),
        expire_time=datetime_of("expire_time", request.expire_time)
        if request.HasField("expire_time")
        else None,
        post_only=request.post_only,
        max_slippage_bps=request.max_slippage_bps or None,
        stp=_known("stp", _STP_NAMES, request.stp),
        client_order_id=request.client_order_id or None,
    )


def order_message(order: Any) -> types_pb2.Order:
    message = types_pb2.Order(
        order_id=order.order_id,
        client_order_id=order.client_order_id or "",
        user_id=order.user_id,
        instrument=order.instrument,
        side=side_value(order.side),
        type=_TYPE_VALUES.get(order.type, types_pb2.ORDER_TYPE_UNSPECIFIED),
        price=decimal_text(order.price),
        quantity=decimal_text(order.quantity),
        filled_quantity=decimal_text(order.filled_quantity),
        average_price=decimal_text(order.average_price),
        status=STATUS_VALUES.get(order.status, types_pb2.ORDER_STATUS_UNSPECIFIED),
        reason=order.reason or "",
        time_in_force=_TIF_VALUES.get(order.time_in_force, types_pb2.TIME_IN_FORCE_UNSPECIFIED),
        stop_price=decimal_text(order.stop_price),
        post_only=bool(order.post_only),
    )
    for name in ("created_at", "updated_at", "expire_time"):
        stamp = timestamp_of(getattr(order, name, None))
        if stamp is not None:
            getattr(message, name).CopyFrom(stamp)
    return message


def fee_of_party(trade: Any, user_id: str | None) -> Decimal | None:
    """The fee `user_id` paid on `trade` when it is one of its two parties (both fees when
    it is both); None for anyone else, or a trade without fees recorded."""
    buyer_fee = getattr(trade, "buyer_fee", None)
    seller_fee = getattr(trade, "seller_fee", None)
    if user_id is None or buyer_fee is None or seller_fee is None:
        return None
    taker_buys = trade.taker_side == "BUY"
    buyer = trade.taker_user_id if taker_buys else trade.maker_user_id
    seller = trade.maker_user_id if taker_buys else trade.taker_user_id
    fees = [fee for party, fee in ((buyer, buyer_fee), (seller, seller_fee)) if party == user_id]
    return sum(fees, Decimal(0)) if fees else None


def trade_message(trade: Any, viewer: str | None = None) -> types_pb2.Trade:
    """A trade; with `viewer`, the fee that account paid on it (only a party's)."""
    message = types_pb2.Trade(
        trade_id=trade.trade_id,
        instrument=trade.instrument,
        price=decimal_text(trade.price),
        quantity=decimal_text(trade.quantity),
        maker_order_id=trade.maker_order_id,
        taker_order_id=trade.taker_order_id,
        taker_side=side_value(trade.taker_side),
    )
    stamp = timestamp_of(trade.executed_at)
    if stamp is not None:
        message.executed_at.CopyFrom(stamp)
    fee = fee_of_party(trade, viewer)
    if fee is not None:
        message.fee = decimal_text(fee)
        message.fee_asset = trade.fee_asset
    return message


def price_level_message(level: Any) -> types_pb2.PriceLevel:
    return types_pb2.PriceLevel(
        price=decimal_text(level.price),
        quantity=decimal_text(level.quantity),
        order_count=level.order_count,
    )


_INSTRUMENT_STATUS_VALUE = {
    "TRADING": types_pb2.INSTRUMENT_STATUS_TRADING,
    "CANCEL_ONLY": types_pb2.INSTRUMENT_STATUS_CANCEL_ONLY,
    "HALTED": types_pb2.INSTRUMENT_STATUS_HALTED,
}


def instrument_status_value(status: str) -> types_pb2.InstrumentStatus.ValueType:
    return _INSTRUMENT_STATUS_VALUE.get(status, types_pb2.INSTRUMENT_STATUS_UNSPECIFIED)


def instrument_message(instrument: Any, status: str = "TRADING") -> types_pb2.Instrument:
    return types_pb2.Instrument(
        symbol=instrument.symbol,
        tick_size=decimal_text(instrument.tick_size),
        lot_size=decimal_text(instrument.lot_size),
        min_quantity=decimal_text(instrument.min_quantity),
        status=instrument_status_value(status),
        base_asset=instrument.base or "",
        quote_asset=instrument.quote or "",
        maker_fee_bps=instrument.maker_fee_bps,
        taker_fee_bps=instrument.taker_fee_bps,
    )
