"""The input rules every entry shares: identifiers, decimal text, steps and times."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.codec import command_from_dict
from domain.commands import AdvanceTime, PlaceOrder
from domain.engine import MatchingEngine
from domain.errors import InvalidField
from domain.input_rules import (
    LATEST_TIME_NS,
    MAX_STEPS,
    check_identifier,
    shown,
)
from domain.instruments import Instrument, parse_decimal, plain_text
from domain.orders import OrderType, Side, TimeInForce
from domain.replay import replay
from domain.timefmt import format_rfc3339, parse_rfc3339

BTC = Instrument("BTC-USD", Decimal("0.01"), Decimal("0.0001"))
VISIBLE_ASCII = "".join(chr(code) for code in range(0x21, 0x7F))


@given(st.text(min_size=1, max_size=200))
def test_an_accepted_identifier_is_visible_ascii_that_every_reader_can_store(text: str) -> None:
    try:
        check_identifier("user_id", text)
    except InvalidField as error:
        assert error.reason in ("MALFORMED", "TOO_LONG")
        assert len(error.message) < 200
        return
    assert 1 <= len(text) <= 128
    assert all(character in VISIBLE_ASCII for character in text)


@given(st.text(alphabet=VISIBLE_ASCII, min_size=1, max_size=128))
def test_every_visible_ascii_identifier_up_to_128_is_accepted(text: str) -> None:
    assert check_identifier("order_id", text) == text


@given(st.text(max_size=60))
def test_an_accepted_decimal_text_is_plain_ascii_digits(text: str) -> None:
    try:
        number = parse_decimal(text, "price")
    except InvalidField as error:
        assert error.reason in ("MALFORMED", "TOO_LONG", "NOT_FINITE")
        return
    # The documented form, read exactly (leading zeros are allowed: "007" is 7, so the
    # text need not be the number's own plain text).
    assert re.fullmatch(r"-?[0-9]+(?:\.[0-9]+)?", text)
    assert number == Decimal(text)
    assert Decimal(plain_text(number)) == number


@pytest.mark.parametrize(
    "text", [" 1", "1 ", "+1", "1_000", "\u0661", "\uff11", "1\n", "1e3", "1E3", ".5", "1."]
)
def test_decimal_text_other_than_plain_is_malformed(text: str) -> None:
    with pytest.raises(InvalidField) as caught:
        parse_decimal(text, "quantity")
    assert (caught.value.field, caught.value.reason) == ("quantity", "MALFORMED")


def test_a_long_decimal_is_too_long_and_not_echoed() -> None:
    with pytest.raises(InvalidField) as caught:
        parse_decimal("1" * 10_000, "price")
    assert caught.value.reason == "TOO_LONG"
    assert len(caught.value.message) < 100


def test_prices_and_quantities_stay_within_max_steps() -> None:
    assert BTC.quantity_to_lots(plain_text(MAX_STEPS * BTC.lot_size)) == MAX_STEPS
    with pytest.raises(InvalidField) as caught:
        BTC.quantity_to_lots(plain_text((MAX_STEPS + 1) * BTC.lot_size))
    assert caught.value.reason == "TOO_LARGE"


def test_tiny_steps_round_trip_in_plain_text() -> None:
    satoshi = Instrument("X", Decimal("0.00000001"), Decimal("0.00000001"))
    assert plain_text(satoshi.ticks_to_price(5)) == "0.00000005"
    assert satoshi.price_to_ticks(plain_text(satoshi.ticks_to_price(5))) == 5


def test_times_are_held_from_the_epoch_to_before_2200() -> None:
    assert parse_rfc3339("2199-12-31T23:59:59.999999999Z") == LATEST_TIME_NS - 1
    for text in ("2200-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z"):
        with pytest.raises(InvalidField) as caught:
            parse_rfc3339(text, "expire_time")
        assert (caught.value.field, caught.value.reason) == ("expire_time", "OUT_OF_RANGE")


def test_a_snapshot_holds_the_latest_expire_time() -> None:
    engine = MatchingEngine([BTC])
    engine.handle(AdvanceTime(1))
    events = engine.handle(
        PlaceOrder(
            order_id="o1",
            user_id="alice",
            instrument="BTC-USD",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=1,
            price=100,
            time_in_force=TimeInForce.GTD,
            expire_time=LATEST_TIME_NS - 1,
        )
    )
    assert type(events[0]).__name__ == "OrderAccepted"
    restored = MatchingEngine.restore(orjson.loads(orjson.dumps(engine.snapshot())))
    assert restored.snapshot() == engine.snapshot()


def test_the_replayer_refuses_poison_ids_and_times_by_field() -> None:
    lines = [
        {"op": "instrument", "symbol": "BTC-USD", "tick_size": "0.01", "lot_size": "0.0001"},
        {**_place("o1"), "user_id": "a\x00b"},
        {**_place("o2"), "time_in_force": "GTD", "expire_time": "9999-01-01T00:00:00Z"},
        {**_place("o\x1b[2J")},
        _place("o3"),
    ]
    output, errors = io.BytesIO(), io.StringIO()
    malformed = replay([orjson.dumps(line) for line in lines], output, errors)
    assert malformed == 3
    assert errors.getvalue().splitlines() == [
        "line 2: field user_id: MALFORMED: user_id 'a\\x00b' may hold only visible ASCII "
        "characters (! to ~)",
        "line 3: field expire_time: OUT_OF_RANGE: expire_time must be from "
        "1970-01-01T00:00:00Z to before 2200-01-01T00:00:00Z",
        "line 4: field order_id: MALFORMED: order_id 'o\\x1b[2J' may hold only visible ASCII "
        "characters (! to ~)",
    ]
    accepted = [orjson.loads(line)["order_id"] for line in output.getvalue().splitlines()[1:]]
    assert accepted == ["o3"]


def test_command_from_dict_takes_integers_as_ascii_digits_only() -> None:
    instruments = {"BTC-USD": BTC}
    market = {**_place("o1"), "type": "MARKET", "price": None}
    for bad in ("\u0661\u0662", " 5", "5.0", 10**19):
        with pytest.raises(InvalidField) as caught:
            command_from_dict({**market, "max_slippage_bps": bad}, instruments)
        assert caught.value.field == "max_slippage_bps"
    command = command_from_dict({**market, "max_slippage_bps": "50"}, instruments)
    assert isinstance(command, PlaceOrder)
    assert command.max_slippage_bps == 50


def test_shown_cuts_long_values() -> None:
    assert shown("abc") == "'abc'"
    assert shown("x" * 1000) == "'" + "x" * 39 + "... (1002 characters)"


def test_format_and_parse_agree_at_the_edges() -> None:
    for nanos in (0, 1, LATEST_TIME_NS - 1):
        assert parse_rfc3339(format_rfc3339(nanos)) == nanos


def _place(order_id: str) -> dict[str, object]:
    return {
        "op": "place",
        "order_id": order_id,
        "user_id": "alice",
        "instrument": "BTC-USD",
        "side": "BUY",
        "type": "LIMIT",
        "price": "100.00",
        "quantity": "1.0000",
    }
