"""The JSON shapes of commands and events: fixed field names, exact decimals, RFC 3339."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.codec import command_from_dict, command_to_dict, event_from_dict, event_to_dict
from domain.commands import AddInstrument, AdvanceTime, AmendOrder, CancelOrder, PlaceOrder
from domain.engine import MatchingEngine
from domain.errors import InvalidField
from domain.instruments import Instrument
from domain.orders import OrderType, SelfTradePrevention, Side, TimeInForce
from domain.timefmt import format_rfc3339, parse_rfc3339

BTC = Instrument("BTC-USD", Decimal("0.01"), Decimal("0.0001"))
INSTRUMENTS = {"BTC-USD": BTC}


def test_a_place_line_becomes_an_integer_command_and_back() -> None:
    line = {
        "op": "place",
        "order_id": "o1",
        "user_id": "u1",
        "instrument": "BTC-USD",
        "side": "BUY",
        "type": "LIMIT",
        "price": "45000.00",
        "quantity": "1.5",
        "time_in_force": "GTD",
        "expire_time": "2026-01-01T00:00:05Z",
        "stp": "CANCEL_BOTH",
        "post_only": True,
    }
    command = command_from_dict(line, INSTRUMENTS)

    assert command == PlaceOrder(
        "o1",
        "u1",
        "BTC-USD",
        Side.BUY,
        OrderType.LIMIT,
        15_000,
        4_500_000,
        TimeInForce.GTD,
        True,
        parse_rfc3339("2026-01-01T00:00:05Z"),
        None,
        SelfTradePrevention.CANCEL_BOTH,
        None,
    )
    assert command_from_dict(command_to_dict(command, INSTRUMENTS), INSTRUMENTS) == command


def test_defaults_and_other_ops() -> None:
    minimal = {
        "op": "place",
        "order_id": "o2",
        "user_id": "u1",
        "instrument": "BTC-USD",
        "side": "SELL",
        "type": "STOP_MARKET",
        "quantity": "2",
        "stop_price": "40000",
        "max_slippage_bps": 25,
    }
    command = command_from_dict(minimal, INSTRUMENTS)
    assert isinstance(command, PlaceOrder)
    assert (command.time_in_force, command.stp, command.post_only) == (
        TimeInForce.GTC,
        SelfTradePrevention.CANCEL_NEWEST,
        False,
    )
    assert (command.stop_price, command.max_slippage_bps) == (4_000_000, 25)
    assert command_from_dict({"op": "cancel", "order_id": "o1"}, INSTRUMENTS) == CancelOrder("o1")
    assert command_from_dict(
        {"op": "amend", "order_id": "o1", "quantity": "1.0", "price": "44990.00"}, INSTRUMENTS
    ) == AmendOrder("o1", 10_000, 4_499_000)
    assert command_from_dict(
        {"op": "time", "now": "2026-01-01T00:00:05.5Z"}, INSTRUMENTS
    ) == AdvanceTime(1_767_225_605_500_000_000)
    assert command_from_dict(
        {"op": "instrument", "symbol": "ETH-USD", "tick_size": "0.1", "lot_size": "0.001"}, {}
    ) == AddInstrument(Instrument("ETH-USD", Decimal("0.1"), Decimal("0.001")))


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ({"order_id": "x"}, "op", "REQUIRED"),
        ({"op": "dance"}, "op", "MALFORMED"),
        ({"op": "cancel"}, "order_id", "REQUIRED"),
        ({"op": "time", "now": "yesterday"}, "now", "MALFORMED"),
        (
            {
                "op": "place",
                "order_id": "o",
                "user_id": "u",
                "instrument": "BTC-USD",
                "side": "UP",
                "type": "LIMIT",
                "price": "1",
                "quantity": "1",
            },
            "side",
            "MALFORMED",
        ),
        (
            {
                "op": "place",
                "order_id": "o",
                "user_id": "u",
                "instrument": "BTC-USD",
                "side": "BUY",
                "type": "LIMIT",
                "price": "1.001",
                "quantity": "1",
            },
            "price",
            "OFF_TICK_GRID",
        ),
        (
            {
                "op": "place",
                "order_id": "o",
                "user_id": "u",
                "instrument": "ETH-USD",
                "side": "BUY",
                "type": "LIMIT",
                "price": "1",
                "quantity": "1",
            },
            "instrument",
            "UNKNOWN_INSTRUMENT",
        ),
        (
            {
                "op": "place",
                "order_id": "o",
                "user_id": "u",
                "instrument": "BTC-USD",
                "side": "BUY",
                "type": "LIMIT",
                "price": "1",
            },
            "quantity",
            "REQUIRED",
        ),
    ],
)
def test_malformed_commands_name_the_field(
    line: dict[str, object], field: str, reason: str
) -> None:
    with pytest.raises(InvalidField) as caught:
        command_from_dict(line, INSTRUMENTS)
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_every_event_round_trips_through_its_dict() -> None:
    engine = MatchingEngine([BTC])
    lines = [
        {
            "op": "place",
            "order_id": "a",
            "user_id": "m",
            "instrument": "BTC-USD",
            "side": "SELL",
            "type": "LIMIT",
            "price": "100.00",
            "quantity": "1",
            "time_in_force": "GTD",
            "expire_time": "2026-01-01T00:00:10Z",
        },
        {
            "op": "place",
            "order_id": "b",
            "user_id": "t",
            "instrument": "BTC-USD",
            "side": "BUY",
            "type": "MARKET",
            "quantity": "0.4",
        },
        {
            "op": "place",
            "order_id": "s",
            "user_id": "t",
            "instrument": "BTC-USD",
            "side": "BUY",
            "type": "STOP_LIMIT",
            "price": "101",
            "stop_price": "100.5",
            "quantity": "0.4",
        },
        {"op": "amend", "order_id": "a", "quantity": "0.9"},
        {"op": "amend", "order_id": "a", "price": "100.50"},
        {
            "op": "place",
            "order_id": "b2",
            "user_id": "t2",
            "instrument": "BTC-USD",
            "side": "BUY",
            "type": "MARKET",
            "quantity": "0.1",
        },
        {
            "op": "place",
            "order_id": "c",
            "user_id": "m",
            "instrument": "BTC-USD",
            "side": "SELL",
            "type": "LIMIT",
            "price": "200",
            "quantity": "1",
            "time_in_force": "GTD",
            "expire_time": "2026-01-01T00:00:10Z",
        },
        {
            "op": "place",
            "order_id": "d",
            "user_id": "m",
            "instrument": "BTC-USD",
            "side": "SELL",
            "type": "LIMIT",
            "price": "200",
            "quantity": "1",
        },
        {"op": "cancel", "order_id": "d"},
        {"op": "cancel", "order_id": "zz"},
        {"op": "time", "now": "2026-01-01T00:00:10Z"},
    ]
    seen = set()
    for line in lines:
        command = command_from_dict(line, engine.instruments, engine.instrument_of)
        for event in engine.handle(command):
            data = event_to_dict(event, engine.instruments)
            seen.add(data["type"])
            assert event_from_dict(data, engine.instruments) == event
    assert seen >= {
        "OrderAccepted",
        "TradeExecuted",
        "OrderPartiallyFilled",
        "OrderFilled",
        "OrderAmended",
        "CancelRejected",
        "ClockAdvanced",
        "OrderExpired",
        "StopTriggered",
        "OrderCancelled",
    }


def test_event_dicts_use_decimal_strings_and_utc_times() -> None:
    engine = MatchingEngine([BTC])
    engine.handle(AdvanceTime(parse_rfc3339("2026-01-01T00:00:00Z")))
    place = command_from_dict(
        {
            "op": "place",
            "order_id": "o1",
            "user_id": "u1",
            "instrument": "BTC-USD",
            "side": "BUY",
            "type": "LIMIT",
            "price": "45000",
            "quantity": "1.5",
        },
        INSTRUMENTS,
    )
    data = event_to_dict(engine.handle(place)[0], INSTRUMENTS)
    assert (data["type"], data["order_id"], data["instrument"]) == (
        "OrderAccepted",
        "o1",
        "BTC-USD",
    )
    assert (data["price"], data["quantity"]) == ("45000.00", "1.5000")
    assert data["accepted_at"] == "2026-01-01T00:00:00Z"


def test_rfc3339_keeps_nanoseconds_and_offsets() -> None:
    assert parse_rfc3339("1970-01-01T00:00:00.000000001Z") == 1
    assert parse_rfc3339("1970-01-01T01:00:00+01:00") == 0
    assert format_rfc3339(1_500_000_000) == "1970-01-01T00:00:01.5Z"
    assert format_rfc3339(0) == "1970-01-01T00:00:00Z"
