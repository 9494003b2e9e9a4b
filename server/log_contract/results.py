"""The engine's results as the log's records: the one conversion from a domain event
(``domain.events``: ticks, lots, nanoseconds) to its record (``records``: Decimal, datetime).

``ResultEncoder.record(event)`` is that conversion. ``ResultEncoder.encode(event)`` is
``mapper.encode(encoder.record(event))`` without building the record: the runner calls it
for every event the engine emits, so it writes the JSON straight from the event with
converters built once per event type and instrument (``tests/log_contract`` holds the two
equal on a real engine's stream). Both give None for the events the log does not hold
(``ClockAdvanced``: the engine's clock moves only on inputs already in the log; instrument
events: instruments come from the configuration).

Decimals are scaled like the instrument's tick or lot size (``45000.00``, ``1.5000``) and
written as plain text; times go through the log's one time format (``format_log_time``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, Final, get_args, get_type_hints

import msgspec

from domain import events
from domain.assets import AMOUNT_ASSET_FIELD, precision_of, unit_of
from domain.instruments import Instrument, step_formatter
from server.log_contract import records
from server.log_contract.mapper import SCHEMA_VERSION_KEY, SCHEMA_VERSIONS, format_log_time

# Domain event class -> its record class; the events missing here are not logged.
RESULT_RECORD_OF: Final[dict[type[msgspec.Struct], type[records.EngineResult]]] = {
    events.OrderAccepted: records.OrderAccepted,
    events.OrderRejected: records.OrderRejected,
    events.TradeExecuted: records.TradeExecuted,
    events.OrderPartiallyFilled: records.OrderPartiallyFilled,
    events.OrderFilled: records.OrderFilled,
    events.OrderCancelled: records.OrderCancelled,
    events.OrderExpired: records.OrderExpired,
    events.OrderAmended: records.OrderAmended,
    events.CancelRejected: records.CancelRejected,
    events.AmendRejected: records.AmendRejected,
    events.StopTriggered: records.StopTriggered,
    events.BookLevelsChanged: records.BookLevelsChanged,
    events.FundsDeposited: records.FundsDeposited,
    events.FundsWithdrawn: records.FundsWithdrawn,
    events.TransferRejected: records.TransferRejected,
    events.FundsHeld: records.FundsHeld,
    events.FundsReleased: records.FundsReleased,
    events.TradeSettled: records.TradeSettled,
    events.InstrumentStatusChanged: records.InstrumentStatusChanged,
    events.InstrumentRejected: records.InstrumentRejected,
    events.AssetAdded: records.AssetAdded,
    events.AssetRejected: records.AssetRejected,
    events.AccountsEnabled: records.AccountsEnabled,
    events.AccountsRejected: records.AccountsRejected,
}

# How a field of a result is converted: by its type in the record (ticks or lots by name).
_PLAIN, _PRICE, _QUANTITY, _TIME, _ENUM, _AMOUNT = range(6)
_PRICE_FIELDS = frozenset({"price", "stop_price", "last_price"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_US = 1000

Encoded = tuple[str, dict[str, Any], dict[str, str]]


def _kind(field: str, annotation: Any) -> int:
    kinds = set(get_args(annotation)) or {annotation}
    if Decimal in kinds:
        if field in AMOUNT_ASSET_FIELD:
            return _AMOUNT
        return _PRICE if field in _PRICE_FIELDS else _QUANTITY
    if datetime in kinds:
        return _TIME
    if any(isinstance(kind, type) and issubclass(kind, Enum) for kind in kinds):
        return _ENUM
    return _PLAIN


def moment_of(nanos: int) -> datetime:
    """The engine's nanoseconds as the log's time; its times come from the log, so they
    are whole microseconds (anything finer would be lost, so it is refused)."""
    micros, rest = divmod(nanos, _NS_PER_US)
    if rest:
        raise ValueError(f"engine time {nanos} ns is finer than the log's microseconds")
    return _EPOCH + timedelta(microseconds=micros)


_last_time_text: tuple[int, str] = (-1, "")


def _time_text(nanos: int) -> str:
    """``format_log_time(moment_of(nanos))``, remembering the last one: the events of one
    command share one time."""
    global _last_time_text
    cached_nanos, cached_text = _last_time_text
    if cached_nanos != nanos:
        cached_text = format_log_time(moment_of(nanos))
        _last_time_text = (nanos, cached_text)
    return cached_text


def _enum_text(member: Enum) -> str:
    return str(member.value)


def _steps_decimal(step: Decimal) -> Callable[[int], Decimal]:
    return lambda value: value * step


def _levels_converter(instrument: Instrument, as_json: bool) -> Callable[[Any], Any]:
    """A ``BookLevelsChanged``'s levels: ticks and lots to the instrument's decimals."""
    if as_json:
        price_text, quantity_text = (
            step_formatter(instrument.tick_size),
            step_formatter(instrument.lot_size),
        )
        return lambda levels: [
            {
                "side": level.side.value,
                "price": price_text(level.price),
                "quantity": quantity_text(level.quantity),
                "order_count": level.order_count,
            }
            for level in levels
        ]
    tick, lot = instrument.tick_size, instrument.lot_size
    return lambda levels: tuple(
        records.LevelChanged(
            side=level.side,
            price=level.price * tick,
            quantity=level.quantity * lot,
            order_count=level.order_count,
        )
        for level in levels
    )


# A plan per (event type, instrument): (type name, metadata, fields, record class); a field is
# (record key, index in the event's tuple, converter or None to copy it).
_Field = tuple[str, int, Callable[[Any], Any] | None]
_Plan = tuple[str, dict[str, str], tuple[_Field, ...], type[records.EngineResult]]
_Plans = dict[tuple[type[msgspec.Struct], str | None], _Plan]


class ResultEncoder:
    """Converts the engine's events for one set of instruments and assets (converters
    built once; `assets` maps each asset to its precision, an asset missing there has the
    default one, as in the engine: pass the engine's own `assets`)."""

    def __init__(
        self, instruments: Mapping[str, Instrument], assets: Mapping[str, int] | None = None
    ) -> None:
        self._instruments = instruments
        self._assets: Mapping[str, int] = {} if assets is None else assets
        self._json_plans: _Plans = {}
        self._record_plans: _Plans = {}

    def encode(self, event: events.Event) -> Encoded | None:
        """``mapper.encode(self.record(event))``, straight from the event; None when the log
        does not hold that event."""
        plan = self._plan_of(event, self._json_plans, True)
        if plan is None:
            return None
        name, metadata, fields, _ = plan
        values = msgspec.structs.astuple(event)
        data: dict[str, Any] = {"type": name}
        for key, index, convert in fields:
            value = values[index]
            data[key] = value if convert is None or value is None else convert(value)
        return name, data, dict(metadata) if metadata else {}

    def record(self, event: events.Event) -> records.EngineResult | None:
        """The log's record of an engine event; None when the log does not hold it."""
        plan = self._plan_of(event, self._record_plans, False)
        if plan is None:
            return None
        _, _, fields, record_cls = plan
        values = msgspec.structs.astuple(event)
        return record_cls(
            **{
                key: value if convert is None or value is None else convert(value)
                for key, index, convert in fields
                for value in (values[index],)
            }
        )

    def _plan_of(self, event: events.Event, plans: _Plans, as_json: bool) -> _Plan | None:
        # A plan per instrument, or per asset for the money events that have none (a
        # TradeSettled's assets are its instrument's, so its instrument keys it).
        key = (type(event), getattr(event, "instrument", None) or getattr(event, "asset", None))
        plan = plans.get(key)
        if plan is None and key[0] in RESULT_RECORD_OF:
            plan = plans[key] = self._plan(key[0], key[1], as_json, event)
        return plan

    def _plan(
        self,
        event_cls: type[msgspec.Struct],
        symbol: str | None,
        as_json: bool,
        example: events.Event,
    ) -> _Plan:
        record_cls = RESULT_RECORD_OF[event_cls]
        instrument = None if symbol is None else self._instruments.get(symbol)
        hints = get_type_hints(record_cls)
        index_of = {field: index for index, field in enumerate(event_cls.__struct_fields__)}
        fields: list[_Field] = []
        for field in record_cls.__struct_fields__:
            kind = _kind(field, hints[field])
            convert: Callable[[Any], Any] | None = None
            if field == "levels":  # BookLevelsChanged's nested levels
                if instrument is None:
                    raise KeyError(f"unknown instrument {symbol!r} for {event_cls.__name__}")
                convert = _levels_converter(instrument, as_json)
            elif kind in (_PRICE, _QUANTITY):
                if instrument is None:
                    raise KeyError(f"unknown instrument {symbol!r} for {event_cls.__name__}")
                step = instrument.tick_size if kind == _PRICE else instrument.lot_size
                convert = step_formatter(step) if as_json else _steps_decimal(step)
            elif kind == _AMOUNT:
                asset = getattr(example, AMOUNT_ASSET_FIELD[field])
                unit = unit_of(precision_of(self._assets, asset))
                convert = step_formatter(unit) if as_json else _steps_decimal(unit)
            elif kind == _TIME:
                convert = _time_text if as_json else moment_of
            elif kind == _ENUM and as_json:
                convert = _enum_text
            fields.append((field, index_of[field], convert))
        name = record_cls.__name__
        version = SCHEMA_VERSIONS[name]
        metadata = {} if version == 1 else {SCHEMA_VERSION_KEY: str(version)}
        return name, metadata, tuple(fields), record_cls
