"""From recorded input events to engine commands, and from engine events to log appends.

Pure and deterministic, so the live engine runner, its restart (snapshot + tail) and any
full replay of the log (tests, audits) turn the same inputs into the same commands:

- ``ClockTicked {"now"}`` advances the engine clock (the engine ignores time going back).
- each ``*Requested`` event first advances the clock to its ``requested_at``, then becomes
  its command: the engine's timestamps are the log's and replay to the microsecond. A
  user's ``CancelAllRequested`` (stream ``cancel-all-<user_id>``) becomes CancelAllOrders.
- engine events go to ``order-<order_id>`` (results for one order) or
  ``trades-<instrument>`` (``TradeExecuted``), in emission order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.codec import event_to_dict
from domain.commands import (
    AddInstrument,
    AdvanceTime,
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    PlaceOrder,
)
from domain.engine import MatchingEngine
from domain.errors import InvalidField
from domain.input_rules import check_identifier, check_time_ns, shown
from domain.instruments import Instrument
from server.log_contract.layout import (
    AMEND_REJECTED,
    CANCEL_REJECTED,
    ENGINE_INPUT_EVENT_TYPES,
    ORDER_AMEND_REQUESTED,
    ORDER_CANCEL_REQUESTED,
    ORDER_PLACE_REQUESTED,
    ORDER_REJECTED,
    TRADE_EXECUTED,
    order_stream,
    trades_stream,
)
from server.log_contract.mapper import decode_data
from server.log_contract.records import (
    CancelAllRequested,
    ClockTicked,
    OrderAmendRequested,
    OrderCancelRequested,
    OrderPlaceRequested,
    Request,
)

UNRECORDED_EVENT_TYPES = frozenset({"ClockAdvanced"})


def new_engine(
    instruments: Mapping[str, Instrument], closed_order_memory: int | None = None
) -> MatchingEngine:
    """An empty engine with every configured instrument, remembering at most
    `closed_order_memory` closed order ids (None: all)."""
    return MatchingEngine(
        (instruments[symbol] for symbol in sorted(instruments)),
        closed_order_memory=closed_order_memory,
    )


def add_missing_instruments(engine: MatchingEngine, instruments: Mapping[str, Instrument]) -> None:
    """Add configured instruments a (restored) engine does not know yet, in symbol order."""
    known = set(engine.instruments)
    for symbol in sorted(instruments):
        if symbol not in known:
            engine.handle(AddInstrument(instruments[symbol]))


def route(event: Mapping[str, Any]) -> str | None:
    """The stream an engine event dict is written to; None for ``ClockAdvanced``.

    The engine's clock moves only on inputs already in the log (``ClockTicked`` and the
    requests' ``requested_at``), so its ``ClockAdvanced`` events would repeat the log.
    """
    kind = event["type"]
    if kind == TRADE_EXECUTED:
        return trades_stream(str(event["instrument"]))
    order_id = event.get("order_id")
    if order_id:
        return order_stream(str(order_id))
    if kind in UNRECORDED_EVENT_TYPES:
        return None
    raise ValueError(f"engine event with no stream: {event!r}")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)


def _nanos(field: str, moment: datetime) -> int:
    """An aware time as the engine's nanoseconds (the log holds microseconds)."""
    return check_time_ns(field, (moment - _EPOCH) // _ONE_MICROSECOND * 1000)


class InputTranslator:
    """Turns input events into commands through the log's contract (stateless: time that
    does not move the engine's clock forward is dropped here, as the engine would ignore
    it anyway). An input the domain's rules refuse raises InvalidField (the runner answers
    it with a rejection); one the contract cannot read raises UnreadableRecord."""

    def __init__(self, instruments: Mapping[str, Instrument]) -> None:
        self._instruments = instruments

    def commands_for(
        self, event_type: str, data: Mapping[str, Any], engine_now: int = -1
    ) -> list[Any]:
        """The commands one input event stands for (possibly none); `engine_now` is the
        engine's clock (ns), so a request at the same or an earlier instant adds no tick."""
        if event_type not in ENGINE_INPUT_EVENT_TYPES:
            return []
        # A record the contract cannot read is a broken log, not a business refusal: the
        # UnreadableRecord stops the runner at it (it reports and waits for a repair).
        record = decode_data(event_type, data)
        if isinstance(record, ClockTicked):
            now = _nanos("now", record.now)
            return [AdvanceTime(now)] if now > engine_now else []
        assert isinstance(record, Request)
        commands: list[Any] = []
        now = _nanos("requested_at", record.requested_at)
        if now > engine_now:
            commands.append(AdvanceTime(now))
        commands.append(self._command_of(record))
        return commands

    def _command_of(self, request: Request) -> Any:
        if isinstance(request, OrderPlaceRequested):
            instrument = self._instrument(request.instrument)
            return PlaceOrder(
                order_id=check_identifier("order_id", request.order_id),
                user_id=check_identifier("user_id", request.user_id),
                instrument=instrument.symbol,
                side=request.side,
                order_type=request.type,
                quantity=instrument.quantity_to_lots(request.quantity, "quantity"),
                price=None
                if request.price is None
                else instrument.price_to_ticks(request.price, "price"),
                time_in_force=request.time_in_force,
                post_only=request.post_only,
                expire_time=None
                if request.expire_time is None
                else _nanos("expire_time", request.expire_time),
                max_slippage_bps=request.max_slippage_bps,
                stp=request.stp,
                stop_price=None
                if request.stop_price is None
                else instrument.price_to_ticks(request.stop_price, "stop_price"),
            )
        if isinstance(request, OrderCancelRequested):
            return CancelOrder(check_identifier("order_id", request.order_id))
        if isinstance(request, OrderAmendRequested):
            instrument = self._instrument(request.instrument)
            return AmendOrder(
                check_identifier("order_id", request.order_id),
                quantity=None
                if request.quantity is None
                else instrument.quantity_to_lots(request.quantity, "quantity"),
                price=None
                if request.price is None
                else instrument.price_to_ticks(request.price, "price"),
            )
        assert isinstance(request, CancelAllRequested)
        return CancelAllOrders(
            check_identifier("user_id", request.user_id),
            None if request.instrument is None else self._instrument(request.instrument).symbol,
        )

    def _instrument(self, symbol: str) -> Instrument:
        instrument = self._instruments.get(symbol)
        if instrument is None:
            raise InvalidField(
                "instrument", "UNKNOWN_INSTRUMENT", f"unknown instrument {shown(symbol)}"
            )
        return instrument


def refused_input(
    event_type: str, data: Mapping[str, Any], error: InvalidField
) -> list[dict[str, Any]]:
    """The results of an input the engine cannot even read (e.g. its instrument has been
    removed from the configuration since it was written): a rejection for the order, so it
    never stays PENDING, instead of an input that would stop the runner forever."""
    common = {
        "order_id": data.get("order_id"),
        "instrument": data.get("instrument"),
        "reason": error.reason,
        "rejected_at": data.get("requested_at"),
    }
    if event_type == ORDER_PLACE_REQUESTED:
        return [{"type": ORDER_REJECTED, "user_id": data.get("user_id"), **common}]
    if event_type == ORDER_CANCEL_REQUESTED:
        return [{"type": CANCEL_REJECTED, **common}]
    if event_type == ORDER_AMEND_REQUESTED:
        return [{"type": AMEND_REJECTED, **common}]
    # An unreadable clock tick moves no clock; an unreadable cancel-all (its instrument
    # since removed from the configuration) has no order of that instrument to cancel.
    return []


def replay_inputs(
    inputs: Iterable[tuple[str, Mapping[str, Any]]],
    instruments: Mapping[str, Instrument],
    closed_order_memory: int | None = None,
) -> list[dict[str, Any]]:
    """Run (event_type, data) inputs through a fresh engine; every event dict it emits.

    The reference a log written by the engine runner must equal (tests, audits).
    """
    engine = new_engine(instruments, closed_order_memory)
    translator = InputTranslator(instruments)
    emitted: list[dict[str, Any]] = []
    for event_type, data in inputs:
        try:
            commands = translator.commands_for(event_type, data, engine.now)
        except InvalidField as error:
            emitted.extend(refused_input(event_type, data, error))
            continue
        for command in commands:
            for event in engine.handle(command):
                event_dict = event_to_dict(event, instruments)
                if event_dict["type"] not in UNRECORDED_EVENT_TYPES:
                    emitted.append(event_dict)
    return emitted
