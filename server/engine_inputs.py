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
from typing import Any

from domain.codec import command_from_dict, event_to_dict
from domain.commands import AddInstrument, AdvanceTime
from domain.engine import MatchingEngine
from domain.errors import InvalidField
from domain.instruments import Instrument
from domain.timefmt import parse_rfc3339
from server.streams import (
    CANCEL_ALL_REQUESTED,
    CLOCK_TICKED,
    ORDER_AMEND_REQUESTED,
    ORDER_CANCEL_REQUESTED,
    ORDER_PLACE_REQUESTED,
    order_stream,
    trades_stream,
)

TRADE_EXECUTED = "TradeExecuted"
UNRECORDED_EVENT_TYPES = frozenset({"ClockAdvanced"})
# Keys of the *Requested events that are the service's, not the command's.
_SERVICE_KEYS = ("user_id", "client_order_id", "requested_at")
_OPS = {
    ORDER_PLACE_REQUESTED: "place",
    ORDER_CANCEL_REQUESTED: "cancel",
    ORDER_AMEND_REQUESTED: "amend",
    CANCEL_ALL_REQUESTED: "cancel_all",
}
# Ops whose command names the user (the others act on an order the engine knows).
_OPS_OF_A_USER = ("place", "cancel_all")


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


class InputTranslator:
    """Turns input events into commands (stateless: time that does not move the engine's
    clock forward is dropped here, as the engine would ignore it anyway)."""

    def __init__(self, instruments: Mapping[str, Instrument]) -> None:
        self._instruments = instruments

    def commands_for(
        self, event_type: str, data: Mapping[str, Any], engine_now: int = -1
    ) -> list[Any]:
        """The commands one input event stands for (possibly none); `engine_now` is the
        engine's clock (ns), so a request at the same or an earlier instant adds no tick."""
        if event_type == CLOCK_TICKED:
            now = parse_rfc3339(data["now"], "now")
            return [AdvanceTime(now)] if now > engine_now else []
        op = _OPS.get(event_type)
        if op is None:
            return []
        commands: list[Any] = []
        requested_at = data.get("requested_at")
        if requested_at:
            now = parse_rfc3339(requested_at, "requested_at")
            if now > engine_now:
                commands.append(AdvanceTime(now))
        command_dict = {key: value for key, value in data.items() if key not in _SERVICE_KEYS}
        command_dict["op"] = op
        if op in _OPS_OF_A_USER:
            command_dict["user_id"] = data["user_id"]
        commands.append(command_from_dict(command_dict, self._instruments))
        return commands


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
        return [{"type": "OrderRejected", "user_id": data.get("user_id"), **common}]
    if event_type == ORDER_CANCEL_REQUESTED:
        return [{"type": "CancelRejected", **common}]
    if event_type == ORDER_AMEND_REQUESTED:
        return [{"type": "AmendRejected", **common}]
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
