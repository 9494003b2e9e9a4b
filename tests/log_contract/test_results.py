"""The engine's results as the log's records (server.log_contract.results): for a real
engine's stream of every result type, the runner's fast encoding is the mapper's encoding
of the record, decodes back to that record, and is what the log held before (the domain
codec's dicts) but for the time format."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.codec import command_from_dict, event_to_dict
from domain.engine import MatchingEngine
from domain.events import ClockAdvanced, Event, InstrumentAdded, OrderAccepted
from domain.instruments import Instrument, plain_text
from domain.timefmt import parse_rfc3339
from server.engine_inputs import route
from server.log_contract.layout import parse_time
from server.log_contract.mapper import decode_data, encode
from server.log_contract.records import RESULT_RECORDS
from server.log_contract.results import ResultEncoder, moment_of

BTC = Instrument("BTC-USD", Decimal("0.01"), Decimal("0.0001"))
# Steps that are not powers of ten take the Decimal path of the text conversion.
ODD = Instrument("ODD-USD", Decimal("0.25"), Decimal("0.5"))
INSTRUMENTS = {BTC.symbol: BTC, ODD.symbol: ODD}


def _place(
    order_id: str, user: str, side: str, price: str | None, quantity: str, **more: Any
) -> dict[str, Any]:
    line = {
        "op": "place",
        "order_id": order_id,
        "user_id": user,
        "instrument": more.pop("instrument", "BTC-USD"),
        "side": side,
        "type": more.pop("type", "LIMIT" if price is not None else "MARKET"),
        "quantity": quantity,
        **more,
    }
    if price is not None:
        line["price"] = price
    return line


SESSION: list[dict[str, Any]] = [
    {"op": "time", "now": "2026-01-01T00:00:00Z"},
    _place("s1", "maker", "SELL", "100.00", "2"),
    {"op": "time", "now": "2026-01-01T00:00:00.5Z"},
    _place("b1", "taker", "BUY", "100.00", "0.75"),  # partial fill of s1, b1 filled
    {"op": "time", "now": "2026-01-01T00:00:01.000123Z"},
    _place("stop", "taker", "BUY", None, "0.5", type="STOP_MARKET", stop_price="100.50"),
    _place("s2", "maker", "SELL", "100.50", "0.5"),
    _place("b2", "other", "BUY", "101.00", "1.5"),  # trades at 100.50: the stop triggers
    _place("s1", "maker", "SELL", "100.00", "1"),  # duplicate id: rejected
    _place("a", "maker", "SELL", "101.00", "1"),
    {"op": "amend", "order_id": "a", "quantity": "0.9"},
    {
        "op": "amend",
        "order_id": "zz",
        "instrument": "BTC-USD",
        "price": "1.00",
    },  # unknown: rejected
    {"op": "cancel", "order_id": "a"},
    {"op": "cancel", "order_id": "zz"},  # unknown: rejected
    _place(
        "gtd",
        "maker",
        "SELL",
        "200.00",
        "1",
        time_in_force="GTD",
        expire_time="2026-01-01T00:00:10Z",
    ),
    _place("o1", "maker", "SELL", "10.25", "1.5", instrument="ODD-USD"),
    _place("o2", "taker", "BUY", "10.75", "0.5", instrument="ODD-USD"),
    {"op": "time", "now": "2026-01-01T00:00:10.000001Z"},  # gtd expires
]


# The same engine with accounts on: every money and venue record.
ACCOUNTS_SESSION: list[dict[str, Any]] = [
    {"op": "time", "now": "2026-01-01T00:00:00Z"},
    {"op": "accounts", "enabled": True},
    {"op": "asset", "asset": "USD", "precision": 8},
    {"op": "asset", "asset": "USD", "precision": 2},  # another precision: rejected
    {"op": "deposit", "transfer_id": "t1", "user_id": "taker", "asset": "USD", "amount": "500"},
    {"op": "deposit", "transfer_id": "t2", "user_id": "maker", "asset": "BTC", "amount": "3"},
    {"op": "deposit", "transfer_id": "t2", "user_id": "maker", "asset": "BTC", "amount": "3"},
    _place("s1", "maker", "SELL", "100.00", "2"),
    _place("b1", "taker", "BUY", "100.00", "0.75"),
    {"op": "cancel", "order_id": "s1"},
    {"op": "withdraw", "transfer_id": "w1", "user_id": "taker", "asset": "BTC", "amount": "0.5"},
    {"op": "instrument_status", "symbol": "BTC-USD", "status": "HALTED"},
    {"op": "instrument_status", "symbol": "NOPE-USD", "status": "HALTED"},
    {"op": "accounts", "enabled": True},  # already on: nothing
]


def _run(session: list[dict[str, Any]], engine: MatchingEngine) -> list[Event]:
    emitted: list[Event] = []
    for line in session:
        command = command_from_dict(line, engine.instruments, engine.instrument_of, engine.assets)
        emitted.extend(engine.handle(command))
    return emitted


def _session_events() -> list[Event]:
    emitted = _run(SESSION, MatchingEngine([BTC, ODD], book_deltas=True))
    emitted += _run(ACCOUNTS_SESSION, MatchingEngine([BTC, ODD], book_deltas=True))
    # Accounts refused once orders exist.
    emitted += _run([SESSION[1], {"op": "accounts", "enabled": True}], MatchingEngine([BTC]))
    return emitted


EVENTS = _session_events()
RESULTS = [event for event in EVENTS if route(event) is not None]


def test_the_session_emits_every_result_type() -> None:
    assert {type(event).__name__ for event in RESULTS} == {cls.__name__ for cls in RESULT_RECORDS}


@pytest.mark.parametrize("event", RESULTS, ids=lambda event: type(event).__name__)
def test_the_fast_encoding_is_the_mappers_encoding_of_the_record(event: Event) -> None:
    encoder = ResultEncoder(INSTRUMENTS)
    record = encoder.record(event)
    assert record is not None
    fast = encoder.encode(event)
    assert fast == encode(record)
    assert fast is not None
    event_type, data, metadata = fast
    # The same JSON text, key order included, and nothing but JSON's own types in it.
    assert msgspec.json.encode(data) == msgspec.json.encode(encode(record)[1])
    assert {type(value) for value in _scalars(data)} <= {str, int, bool, type(None)}
    assert decode_data(event_type, data, metadata) == record


def _scalars(data: dict[str, Any]) -> list[Any]:
    """Every value of a record's JSON, those of its nested records (book levels) included."""
    values: list[Any] = []
    for value in data.values():
        if isinstance(value, list):
            values.extend(item for nested in value for item in nested.values())
        else:
            values.append(value)
    return values


@pytest.mark.parametrize("event", RESULTS, ids=lambda event: type(event).__name__)
def test_the_log_holds_what_it_held_before_but_for_the_time_format(event: Event) -> None:
    encoded = ResultEncoder(INSTRUMENTS).encode(event)
    assert encoded is not None
    before = event_to_dict(event, INSTRUMENTS)  # what the runner wrote before
    now = encoded[1]
    assert set(now) == set(before)
    times = {key for key, value in now.items() if key.endswith(("_at", "_time")) and value}
    assert {key: value for key, value in now.items() if key not in times} == {
        key: value for key, value in before.items() if key not in times
    }
    for key in times:  # six fraction digits and a Z now; the same instant
        assert now[key][-8] == "." and now[key].endswith("Z")
        assert parse_time(now[key]) == parse_time(before[key])
        assert parse_rfc3339(now[key]) == getattr(event, key)


def test_the_events_the_log_does_not_hold_have_no_record() -> None:
    encoder = ResultEncoder(INSTRUMENTS)
    for event in (ClockAdvanced(1_000), InstrumentAdded("X", Decimal(1), Decimal(1), None)):
        assert (encoder.record(event), encoder.encode(event)) == (None, None)


def test_an_engine_time_finer_than_a_microsecond_is_refused() -> None:
    assert moment_of(1_500_000_000).isoformat() == "1970-01-01T00:00:01.500000+00:00"
    with pytest.raises(ValueError, match="microseconds"):
        moment_of(1_000_000_001)


@given(
    steps=st.integers(min_value=-(10**12), max_value=10**12),
    step=st.sampled_from(["1", "0.1", "0.01", "0.00000001", "0.25", "5", "0.5", "2.5E-7"]),
)
def test_decimals_are_the_plain_text_of_steps_times_step(steps: int, step: str) -> None:
    instrument = Instrument("P-Q", Decimal(step), Decimal(step))
    accepted = next(e for e in EVENTS if isinstance(e, OrderAccepted))
    event = msgspec.structs.replace(accepted, instrument="P-Q", price=steps, quantity=steps)
    encoder = ResultEncoder({"P-Q": instrument})
    encoded = encoder.encode(event)
    record = encoder.record(event)
    assert encoded is not None and record is not None
    assert encoded[1]["price"] == plain_text(steps * Decimal(step))
    assert encoded == encode(record)
