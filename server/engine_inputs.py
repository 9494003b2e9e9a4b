"""From recorded input events to engine commands, and from engine events to log appends.

Pure and deterministic, so the live engine runner, its restart (snapshot + tail) and any
full replay of the log (tests, audits) turn the same inputs into the same commands:

- ``ClockTicked {"now"}`` advances the engine clock when it moves time forward.
- each ``*Requested`` event first advances the clock to its ``requested_at`` (when later
  than the engine's time), then becomes its command: the engine's timestamps are
  therefore the log's timestamps and replay to the microsecond.
- engine events go to ``order-<order_id>`` (results for one order) or
  ``trades-<instrument>`` (``TradeExecuted``), in emission order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from domain.codec import command_from_dict, event_to_dict
from domain.engine import MatchingEngine

from domain.commands import AddInstrument
from domain.instruments import Instrument
from server.streams import (
    CLOCK_TICKED,
    ENGINE_INPUT_EVENT_TYPES,
    ORDER_AMEND_REQUESTED,
    ORDER_CANCEL_REQUESTED,
    ORDER_PLACE_REQUESTED,
    format_time,
    order_stream,
    parse_time,
    trades_stream,
)

TRADE_EXECUTED = "TradeExecuted"
# Keys of the *Requested events that are the service's, not the command's.
_SERVICE_KEYS = ("user_id", "client_order_id", "requested_at")
_OPS = {
    ORDER_PLACE_REQUESTED: "place",
    ORDER_CANCEL_REQUESTED: "cancel",
    ORDER_AMEND_REQUESTED: "amend",
}


def new_engine(instruments: Mapping[str, Instrument]) -> MatchingEngine:
    """An empty engine with every configured instrument."""
    engine = MatchingEngine()
    add_missing_instruments(engine, instruments)
    return engine


def add_missing_instruments(engine: MatchingEngine, instruments: Mapping[str, Instrument]) -> None:
    """Add configured instruments a (restored) engine does not know yet, in symbol order."""
    known = engine_instruments(engine)
    for symbol in sorted(instruments):
        if symbol not in known:
            engine.handle(AddInstrument(instruments[symbol]))


def engine_instruments(engine: MatchingEngine) -> set[str]:
    return set(engine.instruments)


def route(event: Mapping[str, Any]) -> str:
    """The stream an engine event dict is written to."""
    if event["type"] == TRADE_EXECUTED:
        return trades_stream(str(event["instrument"]))
    order_id = event.get("order_id")
    if order_id:
        return order_stream(str(order_id))
    raise ValueError(f"engine event with no stream: {event!r}")


class InputTranslator:
    """Turns input events into commands, keeping the engine-clock time it has fed."""

    def __init__(self, instruments: Mapping[str, Instrument], clock: datetime | None = None):
        self._instruments = instruments
        self.clock = clock

    def _advance_to(self, moment_text: str | None, commands: list[Any]) -> None:
        if not moment_text:
            return
        moment = parse_time(moment_text)
        if self.clock is None or moment > self.clock:
            self.clock = moment
            commands.append(
                command_from_dict({"op": "time", "now": format_time(moment)}, self._instruments)
            )

    def commands_for(self, event_type: str, data: Mapping[str, Any]) -> list[Any]:
        """The commands one input event stands for (possibly none)."""
        commands: list[Any] = []
        if event_type == CLOCK_TICKED:
            self._advance_to(data.get("now"), commands)
            return commands
        op = _OPS.get(event_type)
        if op is None:
            return commands
        self._advance_to(data.get("requested_at"), commands)
        command_dict = {key: value for key, value in data.items() if key not in _SERVICE_KEYS}
        command_dict["op"] = op
        if op == "place":
            command_dict["user_id"] = data["user_id"]
        commands.append(command_from_dict(command_dict, self._instruments))
        return commands


def is_engine_input(event_type: str) -> bool:
    return event_type in ENGINE_INPUT_EVENT_TYPES


def replay_inputs(
    inputs: Iterable[tuple[str, Mapping[str, Any]]],
    instruments: Mapping[str, Instrument],
) -> list[dict[str, Any]]:
    """Run (event_type, data) inputs through a fresh engine; every event dict it emits.

    The reference a log written by the engine runner must equal (tests, audits).
    """
    engine = new_engine(instruments)
    translator = InputTranslator(instruments)
    emitted: list[dict[str, Any]] = []
    for event_type, data in inputs:
        for command in translator.commands_for(event_type, data):
            emitted.extend(event_to_dict(event, instruments) for event in engine.handle(command))
    return emitted
