"""Ids from the service cannot drive the operator's terminal: every human-readable path of
the CLI escapes control, format and invisible characters (repr-style), JSON escapes them
the JSON way, and rich markup or emoji codes in ids are shown literally."""

from __future__ import annotations

import json

import grpc
import pytest
from canned_exchange import HOSTILE_ID, CannedExchange
from cli_runs import run_json, run_text

from clients.errors import FieldViolation, make_error
from clients.render import error_text, json_line, printable

# HOSTILE_ID as the CLI must print it: each escape spelled out, the backslash doubled.
SHOWN = "x\\x1b[2J\\x1b[31mred\\x07\\u202eevil\\nnext\\\\[bold]:smile:"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("alice", "alice"),
        ("BTC-USD", "BTC-USD"),
        ("a b", "a b"),
        ("élan-東京", "élan-東京"),
        ("\x1b[2J", "\\x1b[2J"),
        ("bell\x07", "bell\\x07"),
        ("del\x7f", "del\\x7f"),
        ("c1\x9b31m", "c1\\x9b31m"),
        ("rtl\u202eevil", "rtl\\u202eevil"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("nb\u00a0sp", "nb\\xa0sp"),
        ("line\nbreak\r\t", "line\\nbreak\\r\\t"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("back\\slash", "back\\\\slash"),
        (HOSTILE_ID, SHOWN),
    ],
)
def test_printable_escapes_what_could_drive_a_terminal(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_error_text_escapes_each_piece_and_keeps_its_own_line_breaks() -> None:
    error = make_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "bad \x1b[2J order",
        (FieldViolation("user_id\x07", "user_id 'a\nb' is malformed", "MALFORMED\u202e"),),
        reason="R\x1b",
    )
    assert error_text(error) == (
        "INVALID_ARGUMENT: bad \\x1b[2J order (R\\x1b)\n"
        "  user_id\\x07: user_id 'a\\nb' is malformed [MALFORMED\\u202e]"
    )


def test_json_lines_escape_every_control_character() -> None:
    line = json_line({"id": "\x1b\x07\x7f\x9b\u202e"})
    assert line == '{"id":"\\u001b\\u0007\\u007f\\u009b\\u202e"}'
    assert json.loads(line) == {"id": "\x1b\x07\x7f\x9b\u202e"}


async def test_get_shows_hostile_ids_escaped(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = await run_text(canned_exchange.target, capsys, "get", "hostile")
    assert (status, err) == (0, "")
    assert out == [
        f"order_id         {SHOWN}",
        f"client_order_id  {SHOWN}",
        f"user_id          {SHOWN}",
        "instrument       BTC-USD",
        "side             BUY",
        "type             LIMIT",
        "price            45000.00",
        "quantity         1.5000",
        "filled_quantity  0.5000",
        "average_price    44999.5000",
        "status           PARTIALLY_FILLED",
        f"reason           {SHOWN}",
        "time_in_force    GTC",
        "created_at       2026-01-02T03:04:05.123Z",
        "updated_at       2026-01-02T03:04:06.000Z",
        "post_only        False",
    ]


async def test_json_output_keeps_hostile_ids_exact_and_escaped(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, [order], _ = await run_json(canned_exchange.target, capsys, "get", "hostile")
    assert status == 0
    assert (order["order_id"], order["user_id"], order["reason"]) == (HOSTILE_ID,) * 3


async def test_watch_trades_shows_hostile_ids_escaped(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = await run_text(
        canned_exchange.target, capsys, "watch", "trades", "hostile", "--count", "1"
    )
    assert (status, out) == (
        0,
        [
            f"2026-01-02T03:04:07.500Z {SHOWN} {SHOWN} BUY 0.5 @ 44999.50 "
            f"(maker {SHOWN}, taker {SHOWN})"
        ],
    )


async def test_book_title_shows_a_hostile_instrument_escaped(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    # The canned GetOrderBook echoes the instrument asked for.
    status, out, _ = await run_text(canned_exchange.target, capsys, "book", HOSTILE_ID)
    assert (status, out[0], out[-1]) == (0, SHOWN, "last 45000.00, sequence 42")


async def test_errors_quoting_a_hostile_id_are_escaped(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = await run_text(canned_exchange.target, capsys, "get", "missing-\x1b[31m")
    assert (status, out, err) == (1, [], "error: NOT_FOUND: order missing-\\x1b[31m not found\n")
