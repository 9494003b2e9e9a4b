"""The door's invariant, as a property: whatever the command side accepts into the log,
every reader of the log can take.

Place requests with adversarial fields go through the command handlers' validation (no
I/O); each accepted request event is then read back the way the engine runner reads it,
run through the engine, and its results and the engine's snapshot are encoded as the log
and the snapshot stream hold them. A refusal must be an InvalidArgument naming a field.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import event as count_example
from hypothesis import strategies as st

from domain.codec import event_to_dict
from domain.input_rules import MAX_ID_LENGTH
from server.commands import CommandHandlers, PlaceOrderInput
from server.engine_inputs import InputTranslator, new_engine
from server.errors import InvalidArgument
from server.instrument_config import load_instruments
from server.settings import DEFAULT_INSTRUMENTS_FILE

INSTRUMENTS = load_instruments(DEFAULT_INSTRUMENTS_FILE)
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
POISON_TEXT = st.sampled_from(
    ["a\x00b", "\x1b[2J", "\u202e", " ", "  1.0 ", "+1", "1_0", "\u0661", "\uff11", "1\n"]
)
VISIBLE_IDS = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20
)


def _mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` three times in four: most examples reach the deeper checks and the engine."""
    return st.integers(min_value=0, max_value=3).flatmap(lambda pick: bad if pick == 0 else good)


IDS = _mostly(VISIBLE_IDS, st.one_of(st.text(max_size=MAX_ID_LENGTH + 2), POISON_TEXT))
DECIMALS = _mostly(
    st.decimals(min_value=0, max_value=10**12, places=2).map(str),
    st.one_of(
        st.text(alphabet="0123456789.-+_ e\n\u0661", max_size=45),
        st.decimals(allow_nan=True, places=4).map(str),
        st.integers(min_value=-1, max_value=10**22).map(str),
        POISON_TEXT,
    ),
)
MOMENTS = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
    ),
    st.just(NOW + timedelta(days=1)),
)


def _handlers() -> CommandHandlers:
    return CommandHandlers(None, INSTRUMENTS, now=lambda: NOW)  # type: ignore[arg-type]


def _strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings_in(item)]
    return []


@st.composite
def place_requests(draw: st.DrawFn) -> PlaceOrderInput:
    """A well-formed request of a random shape, then up to three fields poisoned."""
    order_type = draw(st.sampled_from(["LIMIT", "MARKET", "STOP_LIMIT", "STOP_MARKET"]))
    priced = order_type in ("LIMIT", "STOP_LIMIT")
    is_stop = order_type.startswith("STOP")
    time_in_force = draw(st.sampled_from(["GTC", "IOC", "FOK", "GTD"] if priced else ["IOC"]))
    good: dict[str, Any] = {
        "user_id": draw(VISIBLE_IDS),
        "instrument": "BTC-USD",
        "side": draw(st.sampled_from(["BUY", "SELL"])),
        "type": order_type,
        "quantity": draw(st.decimals(min_value="0.0001", max_value=10**6, places=4).map(str)),
        "price": draw(st.decimals(min_value="0.01", max_value=10**9, places=2).map(str))
        if priced
        else None,
        "stop_price": draw(st.decimals(min_value="0.01", max_value=10**9, places=2).map(str))
        if is_stop
        else None,
        "time_in_force": time_in_force,
        "expire_time": NOW + timedelta(seconds=draw(st.integers(1, 10**9)))
        if time_in_force == "GTD"
        else None,
        "max_slippage_bps": draw(st.one_of(st.none(), st.integers(0, 2**32 - 1)))
        if not priced
        else None,
        "client_order_id": draw(st.one_of(st.none(), VISIBLE_IDS)),
    }
    poisons = {
        "user_id": IDS,
        "client_order_id": IDS,
        "side": st.sampled_from([None, "UP"]),
        "type": st.sampled_from([None, "ICEBERG"]),
        "quantity": DECIMALS,
        "price": DECIMALS,
        "stop_price": DECIMALS,
        "time_in_force": st.sampled_from(["GTD", "DAY", None]),
        "expire_time": MOMENTS,
        "max_slippage_bps": st.integers(min_value=0, max_value=2**32 - 1),
    }
    for field in draw(st.lists(st.sampled_from(sorted(poisons)), max_size=3, unique=True)):
        good[field] = draw(poisons[field])
    return PlaceOrderInput(**good)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=place_requests())
def test_what_the_door_accepts_every_reader_of_the_log_can_take(request: PlaceOrderInput) -> None:
    try:
        _, request_event = _handlers().place_request_event(request)
    except InvalidArgument as refusal:
        count_example("refused: " + refusal.violations[0].field)
        assert refusal.violations and refusal.violations[0].field
        assert len(refusal.message) <= 512
        return
    count_example("accepted")
    # What PostgreSQL text and a terminal can hold: no NUL, no control character.
    for text in _strings_in(request_event.data):
        assert all(" " < character <= "~" for character in text), repr(text)
    engine = new_engine(INSTRUMENTS)
    commands = InputTranslator(INSTRUMENTS).commands_for(
        request_event.type, request_event.data, engine.now
    )
    results = [
        event_to_dict(result, INSTRUMENTS)
        for command in commands
        for result in engine.handle(command)
    ]
    assert results, "an accepted request gives the engine something to answer"
    orjson.dumps(results)  # the log's JSON: 64-bit integers only
    orjson.dumps(engine.snapshot())  # the snapshot stream's JSON, likewise
