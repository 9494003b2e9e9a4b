"""JSON dict shapes of commands and events (the replayer's lines, the event log's data).

Field names are fixed by issue #2. Decimals are strings scaled like the instrument's tick
or lot size, times RFC 3339 UTC with 'Z', enums their names. Every event dict has "type",
"order_id" where it concerns one order and "instrument" where it has one. A
BookLevelsChanged's levels are a list of {"side", "price", "quantity", "order_count"}.
Amounts of money are strings with the asset's precision (the asset named by the event's
"asset", "base_asset" or "quote_asset" field).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

import msgspec

from domain.assets import (
    AMOUNT_ASSET_FIELD,
    amount_to_units,
    check_asset,
    check_precision,
    precision_of,
)
from domain.assets import unit_of as _unit
from domain.assets import units_formatter as _units_formatter
from domain.commands import (
    AddAsset,
    AddInstrument,
    AdvanceTime,
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Command,
    Deposit,
    EnableAccounts,
    PlaceOrder,
    SetInstrumentStatus,
    Withdraw,
)
from domain.errors import InvalidField
from domain.events import EVENT_TYPES, BookLevelsChanged, Event, InstrumentAdded, LevelChanged
from domain.input_rules import MAX_STEPS, check_identifier, shown
from domain.instruments import (
    Instrument,
    InstrumentStatus,
    parse_decimal,
    plain_text,
    step_formatter,
)
from domain.orders import OrderType, SelfTradePrevention, Side, TimeInForce
from domain.timefmt import format_rfc3339, parse_rfc3339

InstrumentOf = Callable[[str], str | None]
_E = TypeVar("_E", bound=StrEnum)

# How each event field is written: by its name.
_PRICE_FIELDS = frozenset({"price", "stop_price", "last_price"})
_QUANTITY_FIELDS = frozenset(
    {
        "quantity",
        "filled_quantity",
        "remaining_quantity",
        "cancelled_quantity",
        "expired_quantity",
    }
)
_TIME_FIELDS = frozenset(
    {
        "now",
        "expire_time",
        "accepted_at",
        "rejected_at",
        "executed_at",
        "cancelled_at",
        "expired_at",
        "amended_at",
        "triggered_at",
        "changed_at",
        "enabled_at",
        "deposited_at",
        "withdrawn_at",
        "held_at",
        "released_at",
        "settled_at",
    }
)
# InstrumentAdded's fields that exist only for an instrument that names its assets.
_INSTRUMENT_ASSET_FIELDS = ("base", "quote", "maker_fee_bps", "taker_fee_bps")
_ENUM_FIELDS: dict[str, type[StrEnum]] = {
    "side": Side,
    "taker_side": Side,
    "order_type": OrderType,
    "time_in_force": TimeInForce,
    "stp": SelfTradePrevention,
    "status": InstrumentStatus,
}
_DECIMAL_FIELDS = frozenset({"tick_size", "lot_size", "min_quantity"})
# Name -> member, looked up directly (calling an Enum class to convert is slow).
_ENUM_MEMBERS: dict[type[StrEnum], dict[str, StrEnum]] = {
    enum: {member.value: member for member in enum}
    for enum in (Side, OrderType, TimeInForce, SelfTradePrevention, InstrumentStatus)
}

_INTEGER_TEXT = re.compile(r"-?[0-9]{1,18}")

_PLAIN, _PRICE, _QUANTITY, _TIME, _ENUM, _DECIMAL, _AMOUNT = range(7)


def _kind(name: str) -> int:
    if name in _PRICE_FIELDS:
        return _PRICE
    if name in _QUANTITY_FIELDS:
        return _QUANTITY
    if name in _TIME_FIELDS:
        return _TIME
    if name in _ENUM_FIELDS:
        return _ENUM
    if name in _DECIMAL_FIELDS:
        return _DECIMAL
    if name in AMOUNT_ASSET_FIELD:
        return _AMOUNT
    return _PLAIN


_EVENT_LAYOUT: dict[type, tuple[str, tuple[tuple[str, int], ...]]] = {
    cls: (name, tuple((field, _kind(field)) for field in cls.__struct_fields__))
    for name, cls in EVENT_TYPES.items()
}


# ---------------------------------------------------------------- field readers


def _required(data: Mapping[str, Any], name: str) -> Any:
    value = data.get(name)
    if value is None:
        raise InvalidField(name, "REQUIRED", f"{name} is required")
    return value


def _text(data: Mapping[str, Any], name: str) -> str:
    """An identifier field (see `domain.input_rules`)."""
    return check_identifier(name, _required(data, name))


def _enum(data: Mapping[str, Any], name: str, enum: type[_E], default: _E | None = None) -> _E:
    value = data.get(name)
    if value is None:
        if default is None:
            raise InvalidField(name, "REQUIRED", f"{name} is required")
        return default
    member = _ENUM_MEMBERS[enum].get(value) if isinstance(value, str) else None
    if member is None:
        allowed = ", ".join(member.value for member in enum)
        raise InvalidField(name, "MALFORMED", f"{name} {shown(value)} is not one of {allowed}")
    return member  # type: ignore[return-value]


def _bool(data: Mapping[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidField(name, "MALFORMED", f"{name} must be true or false")
    return value


def _optional_int(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidField(name, "MALFORMED", f"{name} must be an integer")
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
        value = int(value)
    if not isinstance(value, int):
        raise InvalidField(name, "MALFORMED", f"{name} must be an integer")
    if abs(value) > MAX_STEPS:
        raise InvalidField(name, "TOO_LARGE", f"{name} is beyond {MAX_STEPS}")
    return value


def _instrument(symbol: str, instruments: Mapping[str, Instrument]) -> Instrument:
    instrument = instruments.get(symbol)
    if instrument is None:
        raise InvalidField(
            "instrument", "UNKNOWN_INSTRUMENT", f"unknown instrument {shown(symbol)}"
        )
    return instrument


# ---------------------------------------------------------------- commands


def command_from_dict(
    data: Mapping[str, Any],
    instruments: Mapping[str, Instrument],
    instrument_of_order: InstrumentOf | None = None,
    assets: Mapping[str, int] | None = None,
) -> Command:
    """Build a command from its JSON dict. Unknown extra fields are ignored.

    A transfer's amount is read with its asset's precision from `assets` (an asset not
    there has the default precision, as the engine gives it).

    An amend's decimals need its instrument: taken from an "instrument" field, else from
    `instrument_of_order(order_id)`, else the only instrument there is. When none applies,
    raises InvalidField("order_id", "UNKNOWN_ORDER").
    """
    if not isinstance(data, Mapping):
        raise InvalidField("op", "MALFORMED", "a command must be a JSON object")
    op = _text(data, "op")
    if op == "place":
        return _place_from_dict(data, instruments)
    if op == "cancel":
        return CancelOrder(_text(data, "order_id"))
    if op == "amend":
        return _amend_from_dict(data, instruments, instrument_of_order)
    if op == "cancel_all":
        symbol = data.get("instrument")
        return CancelAllOrders(
            _text(data, "user_id"),
            None if symbol is None else _instrument(_text(data, "instrument"), instruments).symbol,
        )
    if op == "time":
        return AdvanceTime(parse_rfc3339(_required(data, "now"), "now"))
    if op == "instrument":
        return AddInstrument(instrument_from_dict(data))
    if op == "deposit" or op == "withdraw":
        return _transfer_from_dict(op, data, assets or {})
    if op == "instrument_status":
        return SetInstrumentStatus(_text(data, "symbol"), _enum(data, "status", InstrumentStatus))
    if op == "accounts":
        enabled = data.get("enabled")
        if enabled is not True:
            raise InvalidField(
                "enabled", "MALFORMED", "accounts can only be turned on: enabled must be true"
            )
        return EnableAccounts()
    if op == "asset":
        return AddAsset(
            check_asset("asset", _required(data, "asset")),
            check_precision("precision", _required(data, "precision")),
        )
    raise InvalidField(
        "op",
        "MALFORMED",
        f"op {op!r} is not one of {', '.join(OPS)}",
    )


OPS = (
    "place",
    "cancel",
    "amend",
    "cancel_all",
    "time",
    "instrument",
    "accounts",
    "asset",
    "deposit",
    "withdraw",
    "instrument_status",
)


def instrument_from_dict(data: Mapping[str, Any]) -> Instrument:
    """An instrument from its JSON dict: symbol, tick_size, lot_size, optional
    min_quantity, base, quote, maker_fee_bps and taker_fee_bps."""
    min_quantity = data.get("min_quantity")
    base = data.get("base")
    quote = data.get("quote")
    return Instrument(
        _text(data, "symbol"),
        parse_decimal(_required(data, "tick_size"), "tick_size"),
        parse_decimal(_required(data, "lot_size"), "lot_size"),
        None if min_quantity is None else parse_decimal(min_quantity, "min_quantity"),
        None if base is None else check_asset("base", base),
        None if quote is None else check_asset("quote", quote),
        _optional_int(data, "maker_fee_bps") or 0,
        _optional_int(data, "taker_fee_bps") or 0,
    )


def _transfer_from_dict(op: str, data: Mapping[str, Any], assets: Mapping[str, int]) -> Command:
    asset = check_asset("asset", _required(data, "asset"))
    amount = amount_to_units(_required(data, "amount"), precision_of(assets, asset))
    kind = Deposit if op == "deposit" else Withdraw
    return kind(_text(data, "transfer_id"), _text(data, "user_id"), asset, amount)


def _place_from_dict(data: Mapping[str, Any], instruments: Mapping[str, Instrument]) -> PlaceOrder:
    order_id = _text(data, "order_id")
    user_id = _text(data, "user_id")
    instrument = _instrument(_text(data, "instrument"), instruments)
    side = _enum(data, "side", Side)
    order_type = _enum(data, "type", OrderType)
    quantity = instrument.quantity_to_lots(_required(data, "quantity"), "quantity")
    price = data.get("price")
    stop_price = data.get("stop_price")
    expire_time = data.get("expire_time")
    return PlaceOrder(
        order_id=order_id,
        user_id=user_id,
        instrument=instrument.symbol,
        side=side,
        order_type=order_type,
        quantity=quantity,
        price=None if price is None else instrument.price_to_ticks(price, "price"),
        time_in_force=_enum(data, "time_in_force", TimeInForce, TimeInForce.GTC),
        post_only=_bool(data, "post_only"),
        expire_time=None if expire_time is None else parse_rfc3339(expire_time, "expire_time"),
        max_slippage_bps=_optional_int(data, "max_slippage_bps"),
        stp=_enum(data, "stp", SelfTradePrevention, SelfTradePrevention.CANCEL_NEWEST),
        stop_price=None
        if stop_price is None
        else instrument.price_to_ticks(stop_price, "stop_price"),
    )


def _amend_from_dict(
    data: Mapping[str, Any],
    instruments: Mapping[str, Instrument],
    instrument_of_order: InstrumentOf | None,
) -> AmendOrder:
    order_id = _text(data, "order_id")
    quantity = data.get("quantity")
    price = data.get("price")
    if quantity is None and price is None:
        return AmendOrder(order_id)
    symbol = data.get("instrument")
    if symbol is None and instrument_of_order is not None:
        symbol = instrument_of_order(order_id)
    if symbol is None and instrument_of_order is None and len(instruments) == 1:
        symbol = next(iter(instruments))
    if symbol is None:
        raise InvalidField("order_id", "UNKNOWN_ORDER", f"order {order_id!r} is not open")
    if not isinstance(symbol, str):
        raise InvalidField("instrument", "MALFORMED", "instrument must be a string")
    instrument = _instrument(symbol, instruments)
    return AmendOrder(
        order_id,
        quantity=None if quantity is None else instrument.quantity_to_lots(quantity, "quantity"),
        price=None if price is None else instrument.price_to_ticks(price, "price"),
    )


def command_to_dict(
    command: Command,
    instruments: Mapping[str, Instrument],
    assets: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The JSON dict of a command (inverse of `command_from_dict`)."""
    if isinstance(command, PlaceOrder):
        instrument = instruments[command.instrument]
        data: dict[str, Any] = {
            "op": "place",
            "order_id": command.order_id,
            "user_id": command.user_id,
            "instrument": command.instrument,
            "side": command.side.value,
            "type": command.order_type.value,
        }
        if command.price is not None:
            data["price"] = plain_text(instrument.ticks_to_price(command.price))
        data["quantity"] = plain_text(instrument.lots_to_quantity(command.quantity))
        data["time_in_force"] = command.time_in_force.value
        if command.post_only:
            data["post_only"] = True
        if command.expire_time is not None:
            data["expire_time"] = format_rfc3339(command.expire_time)
        if command.max_slippage_bps is not None:
            data["max_slippage_bps"] = command.max_slippage_bps
        data["stp"] = command.stp.value
        if command.stop_price is not None:
            data["stop_price"] = plain_text(instrument.ticks_to_price(command.stop_price))
        return data
    if isinstance(command, CancelOrder):
        return {"op": "cancel", "order_id": command.order_id}
    if isinstance(command, AmendOrder):
        if command.quantity is None and command.price is None:
            return {"op": "amend", "order_id": command.order_id}
        if len(instruments) != 1:
            raise ValueError("an amend's decimals need its instrument: use amend_to_dict")
        return amend_to_dict(command, next(iter(instruments.values())))
    if isinstance(command, CancelAllOrders):
        data = {"op": "cancel_all", "user_id": command.user_id}
        if command.instrument is not None:
            data["instrument"] = command.instrument
        return data
    if isinstance(command, AdvanceTime):
        return {"op": "time", "now": format_rfc3339(command.now)}
    if isinstance(command, AddInstrument):
        instrument = command.instrument
        data = {
            "op": "instrument",
            "symbol": instrument.symbol,
            "tick_size": plain_text(instrument.tick_size),
            "lot_size": plain_text(instrument.lot_size),
        }
        if instrument.min_quantity is not None:
            data["min_quantity"] = plain_text(instrument.min_quantity)
        if instrument.base is not None:
            for field in _INSTRUMENT_ASSET_FIELDS:
                data[field] = getattr(instrument, field)
        return data
    if isinstance(command, Deposit | Withdraw):
        return {
            "op": "deposit" if isinstance(command, Deposit) else "withdraw",
            "transfer_id": command.transfer_id,
            "user_id": command.user_id,
            "asset": command.asset,
            "amount": _units_formatter(precision_of(assets or {}, command.asset))(command.amount),
        }
    if isinstance(command, SetInstrumentStatus):
        return {
            "op": "instrument_status",
            "symbol": command.instrument,
            "status": command.status.value,
        }
    if isinstance(command, EnableAccounts):
        return {"op": "accounts", "enabled": True}
    if isinstance(command, AddAsset):
        return {"op": "asset", "asset": command.asset, "precision": command.precision}
    raise TypeError(f"not a command: {command!r}")


def amend_to_dict(command: AmendOrder, instrument: Instrument) -> dict[str, Any]:
    """The JSON dict of an amend, with its instrument (needed to write its decimals)."""
    data: dict[str, Any] = {
        "op": "amend",
        "order_id": command.order_id,
        "instrument": instrument.symbol,
    }
    if command.quantity is not None:
        data["quantity"] = plain_text(instrument.lots_to_quantity(command.quantity))
    if command.price is not None:
        data["price"] = plain_text(instrument.ticks_to_price(command.price))
    return data


# ---------------------------------------------------------------- events


_FORMATTERS: dict[Decimal, Callable[[int], str]] = {}


def _formatter(step: Decimal) -> Callable[[int], str]:
    formatter = _FORMATTERS.get(step)
    if formatter is None:
        formatter = _FORMATTERS[step] = step_formatter(step)
    return formatter


def _fields_of_kind(cls: type, *kinds: int) -> tuple[str, ...]:
    return tuple(field for field, kind in _EVENT_LAYOUT[cls][1] if kind in kinds)


# Per event class: its name, then the fields to convert: prices, quantities, times, texts,
# and amounts with the field naming their asset.
_Conversions = tuple[
    str,
    tuple[str, ...],
    tuple[str, ...],
    tuple[str, ...],
    tuple[str, ...],
    tuple[tuple[str, str], ...],
]
_EVENT_CONVERSIONS: dict[type, _Conversions] = {
    cls: (
        name,
        _fields_of_kind(cls, _PRICE),
        _fields_of_kind(cls, _QUANTITY),
        _fields_of_kind(cls, _TIME),
        _fields_of_kind(cls, _ENUM, _DECIMAL),
        tuple((field, AMOUNT_ASSET_FIELD[field]) for field in _fields_of_kind(cls, _AMOUNT)),
    )
    for name, cls in EVENT_TYPES.items()
}


def event_to_dict(
    event: Event,
    instruments: Mapping[str, Instrument],
    assets: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The JSON dict of an event: {"type": ..., fields...}, decimals as strings (amounts
    with their asset's precision from `assets`)."""
    conversions = _EVENT_CONVERSIONS.get(type(event))
    if conversions is None:
        assert isinstance(event, BookLevelsChanged)
        return _book_levels_changed_to_dict(event, instruments)
    name, prices, quantities, times, texts, amounts = conversions
    data: dict[str, Any] = {"type": name}
    data.update(msgspec.structs.asdict(event))
    if amounts:
        known = assets or {}
        for field, asset_field in amounts:
            data[field] = _units_formatter(precision_of(known, data[asset_field]))(data[field])
    elif type(event) is InstrumentAdded and data["base"] is None:
        for field in _INSTRUMENT_ASSET_FIELDS:
            del data[field]
    if prices or quantities:
        symbol = data["instrument"]
        instrument = instruments.get(symbol)
        if instrument is None:
            raise KeyError(f"unknown instrument {symbol!r} for {name}")
        if prices:
            price_text = _formatter(instrument.tick_size)
            for field in prices:
                value = data[field]
                if value is not None:
                    data[field] = price_text(value)
        if quantities:
            quantity_text = _formatter(instrument.lot_size)
            for field in quantities:
                value = data[field]
                if value is not None:
                    data[field] = quantity_text(value)
    for field in times:
        value = data[field]
        if value is not None:
            data[field] = format_rfc3339(value)
    for field in texts:
        value = data[field]
        if value is not None:
            # StrEnum and Decimal -> plain text
            data[field] = plain_text(value) if isinstance(value, Decimal) else str(value)
    return data


def _book_levels_changed_to_dict(
    event: BookLevelsChanged, instruments: Mapping[str, Instrument]
) -> dict[str, Any]:
    instrument = instruments.get(event.instrument)
    if instrument is None:
        raise KeyError(f"unknown instrument {event.instrument!r} for BookLevelsChanged")
    price_text = _formatter(instrument.tick_size)
    quantity_text = _formatter(instrument.lot_size)
    return {
        "type": "BookLevelsChanged",
        "instrument": event.instrument,
        "sequence": event.sequence,
        "levels": [
            {
                "side": level.side.value,
                "price": price_text(level.price),
                "quantity": quantity_text(level.quantity),
                "order_count": level.order_count,
            }
            for level in event.levels
        ],
        "changed_at": format_rfc3339(event.changed_at),
    }


def _exact_steps(value: Any, step: Decimal, field: str) -> int:
    number = parse_decimal(value, field)
    steps, leftover = divmod(number, step)
    if leftover != 0:
        raise InvalidField(field, "OFF_GRID", f"{field} {value!r} is not a multiple of {step}")
    return int(steps)


def event_from_dict(
    data: Mapping[str, Any],
    instruments: Mapping[str, Instrument],
    assets: Mapping[str, int] | None = None,
) -> Event:
    """Rebuild an event from its JSON dict (inverse of `event_to_dict`)."""
    name = data.get("type")
    if name == "BookLevelsChanged":
        return _book_levels_changed_from_dict(data, instruments)
    cls = EVENT_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise InvalidField("type", "MALFORMED", f"unknown event type {name!r}")
    _, layout = _EVENT_LAYOUT[cls]
    symbol = data.get("instrument")
    instrument = instruments.get(symbol) if isinstance(symbol, str) else None
    values: list[Any] = []
    for field, kind in layout:
        value = data.get(field)
        if value is None and field in _INSTRUMENT_ASSET_FIELDS[2:]:
            value = 0  # the fees of an instrument written without its assets
        if value is None or kind == _PLAIN:
            values.append(value)
        elif kind == _TIME:
            values.append(parse_rfc3339(value, field))
        elif kind == _ENUM:
            values.append(_enum(data, field, _ENUM_FIELDS[field]))
        elif kind == _DECIMAL:
            values.append(parse_decimal(value, field))
        elif kind == _AMOUNT:
            asset = data.get(AMOUNT_ASSET_FIELD[field])
            precision = precision_of(assets or {}, asset if isinstance(asset, str) else "")
            values.append(_exact_steps(value, _unit(precision), field))
        elif instrument is None:
            raise InvalidField("instrument", "UNKNOWN_INSTRUMENT", f"unknown instrument {symbol!r}")
        elif kind == _PRICE:
            values.append(_exact_steps(value, instrument.tick_size, field))
        else:
            values.append(_exact_steps(value, instrument.lot_size, field))
    return cls(*values)


def _book_levels_changed_from_dict(
    data: Mapping[str, Any], instruments: Mapping[str, Instrument]
) -> BookLevelsChanged:
    instrument = _instrument(_text(data, "instrument"), instruments)
    levels = _required(data, "levels")
    if not isinstance(levels, list) or not all(isinstance(level, Mapping) for level in levels):
        raise InvalidField("levels", "MALFORMED", "levels must be a list of objects")
    return BookLevelsChanged(
        instrument.symbol,
        _count(data, "sequence"),
        tuple(
            LevelChanged(
                _enum(level, "side", Side),
                _exact_steps(_required(level, "price"), instrument.tick_size, "price"),
                _exact_steps(_required(level, "quantity"), instrument.lot_size, "quantity"),
                _count(level, "order_count"),
            )
            for level in levels
        ),
        parse_rfc3339(_required(data, "changed_at"), "changed_at"),
    )


def _count(data: Mapping[str, Any], name: str) -> int:
    value = _optional_int(data, name)
    if value is None:
        raise InvalidField(name, "REQUIRED", f"{name} is required")
    return value
