"""`python -m domain.replay`, run as people run it: a subprocess fed on standard input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]

SCENARIO = """\
{"op":"instrument","symbol":"BTC-USD","tick_size":"0.01","lot_size":"0.0001"}
{"op":"place","order_id":"s1","user_id":"alice","instrument":"BTC-USD","side":"SELL","type":"LIMIT","price":"45000.00","quantity":"1.0","time_in_force":"GTC"}
{"op":"place","order_id":"b1","user_id":"bob","instrument":"BTC-USD","side":"BUY","type":"LIMIT","price":"45010.00","quantity":"1.5","time_in_force":"GTC"}
{"op":"amend","order_id":"b1","quantity":"1.2"}
{"op":"time","now":"2026-01-01T00:00:05Z"}
{"op":"cancel","order_id":"b1"}
{"op":"cancel","order_id":"b1"}
"""


def run_replay(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "domain.replay"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=60,
    )


def test_replay_writes_the_events_of_each_command_in_order() -> None:
    result = run_replay(SCENARIO)

    events = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert result.stderr == ""
    assert [(e["type"], e.get("order_id")) for e in events] == [
        ("InstrumentAdded", None),
        ("OrderAccepted", "s1"),
        ("OrderAccepted", "b1"),
        ("TradeExecuted", None),
        ("OrderFilled", "s1"),
        ("OrderPartiallyFilled", "b1"),
        ("OrderAmended", "b1"),
        ("ClockAdvanced", None),
        ("OrderCancelled", "b1"),
        ("CancelRejected", "b1"),
    ]
    assert events[3] == {
        "type": "TradeExecuted",
        "trade_id": "BTC-USD-1",
        "instrument": "BTC-USD",
        "price": "45000.00",
        "quantity": "1.0000",
        "maker_order_id": "s1",
        "taker_order_id": "b1",
        "taker_side": "BUY",
        "maker_user_id": "alice",
        "taker_user_id": "bob",
        "executed_at": "1970-01-01T00:00:00Z",
    }
    assert events[6] == {
        "type": "OrderAmended",
        "order_id": "b1",
        "instrument": "BTC-USD",
        "price": "45010.00",
        "quantity": "1.2000",
        "remaining_quantity": "0.2000",
        "priority_lost": False,
        "amended_at": "1970-01-01T00:00:00Z",
    }
    assert events[8] == {
        "type": "OrderCancelled",
        "order_id": "b1",
        "instrument": "BTC-USD",
        "reason": "USER_REQUESTED",
        "cancelled_quantity": "0.2000",
        "filled_quantity": "1.0000",
        "cancelled_at": "2026-01-01T00:00:05Z",
    }
    assert events[9]["reason"] == "ORDER_CLOSED"


def test_a_malformed_line_is_reported_with_line_and_field_and_the_replay_goes_on() -> None:
    lines = SCENARIO.splitlines()
    lines.insert(2, "this is not json")
    lines.insert(
        3,
        '{"op":"place","order_id":"x","user_id":"bob","instrument":"BTC-USD","side":"BUY",'
        '"type":"LIMIT","price":"45000.005","quantity":"1"}',
    )
    lines.insert(4, '{"op":"place","order_id":"y","user_id":"bob","instrument":"BTC-USD"}')

    result = run_replay("\n".join(lines) + "\n")

    errors = result.stderr.splitlines()
    assert len(errors) == 3
    assert errors[0].startswith("line 3: ")
    assert errors[1].startswith("line 4: field price: OFF_TICK_GRID")
    assert errors[2].startswith("line 5: field side: REQUIRED")
    assert len(result.stdout.splitlines()) == 10  # the valid lines all still ran


def test_amending_an_unknown_order_is_an_event_not_an_error() -> None:
    result = run_replay(
        SCENARIO.splitlines()[0] + "\n" + '{"op":"amend","order_id":"nope","price":"1.00"}\n'
    )

    last = orjson.loads(result.stdout.splitlines()[-1])
    assert (last["type"], last["reason"], result.stderr) == ("AmendRejected", "UNKNOWN_ORDER", "")


ACCOUNTS_SCENARIO = """\
{"op":"accounts","enabled":true}
{"op":"instrument","symbol":"BTC-USD","tick_size":"0.01","lot_size":"0.0001","taker_fee_bps":10}
{"op":"deposit","user_id":"bob","asset":"USD","amount":"50000","transfer_id":"t1"}
{"op":"deposit","user_id":"alice","asset":"BTC","amount":"1","transfer_id":"t2"}
{"op":"place","order_id":"s1","user_id":"alice","instrument":"BTC-USD","side":"SELL","type":"LIMIT","price":"45000.00","quantity":"1.0"}
{"op":"place","order_id":"b1","user_id":"bob","instrument":"BTC-USD","side":"BUY","type":"LIMIT","price":"45000.00","quantity":"0.5"}
{"op":"withdraw","user_id":"bob","asset":"USD","amount":"50000","transfer_id":"w1"}
{"op":"instrument_status","symbol":"BTC-USD","status":"HALTED"}
{"op":"cancel","order_id":"s1"}
"""


def test_a_stream_that_turns_accounts_on_replays_its_balances() -> None:
    result = run_replay(ACCOUNTS_SCENARIO)
    assert result.stderr == ""
    events = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [e["type"] for e in events] == [
        "AccountsEnabled",
        "AssetAdded",
        "AssetAdded",
        "InstrumentAdded",
        "FundsDeposited",
        "FundsDeposited",
        "OrderAccepted",
        "FundsHeld",
        "OrderAccepted",
        "FundsHeld",
        "TradeExecuted",
        "OrderPartiallyFilled",
        "OrderFilled",
        "TradeSettled",
        "TransferRejected",
        "InstrumentStatusChanged",
        "CancelRejected",
    ]
    assert events[1] == {"type": "AssetAdded", "asset": "BTC", "precision": 8}
    assert events[3]["base"] == "BTC" and events[3]["taker_fee_bps"] == 10
    # Bob holds 0.5 BTC at 45,000 plus 10 bps: 22,500 + 22.50 USD.
    assert events[9]["amount"] == "22522.50000000"
    settled = events[13]
    assert (settled["quote_amount"], settled["buyer_fee"], settled["seller_fee"]) == (
        "22500.00000000",
        "22.50000000",
        "0.00000000",
    )
    assert events[14]["reason"] == "INSUFFICIENT_FUNDS"
    assert events[16]["reason"] == "INSTRUMENT_HALTED"


def test_a_stream_without_accounts_writes_no_asset_fields() -> None:
    events = [orjson.loads(line) for line in run_replay(SCENARIO).stdout.splitlines()]
    assert set(events[0]) == {"type", "instrument", "tick_size", "lot_size", "min_quantity"}
