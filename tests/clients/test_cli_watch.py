"""`exchange watch` keeps following a stream that breaks, and says so; against real gRPC
servers (the canned one, and one stopped under the watcher)."""

from __future__ import annotations

import asyncio
import io
import json
import sys

import pytest
from canned_exchange import CannedExchange, start_canned_exchange
from cli_runs import run_json, run_text

from clients import watch
from clients.cli import run
from clients.watch import ShownPositions, reconnect_delay

TRADE_LINE = (
    "2026-01-02T03:04:07.500Z BTC-USD BTC-USD-{} BUY 0.5000 @ 44999.50 (maker o-0, taker o-1)"
)


@pytest.fixture
def quick_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    """Back-off of 1 ms, 2 ms, ... instead of 0.5 s, 1 s, ...: the same sequence, faster."""
    monkeypatch.setattr(watch, "RECONNECT_FIRST_DELAY_SECONDS", 0.001)


# --- options after the stream's name ------------------------------------------------------------


async def test_watch_trades_with_count_after_the_instrument(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = await run_text(
        canned_exchange.target, capsys, "watch", "trades", "endless-after", "--count", "2"
    )
    assert (status, out, err) == (0, [TRADE_LINE.format(1), TRADE_LINE.format(2)], "")


# --- ABORTED: resubscribe, nothing shown twice --------------------------------------------------


async def test_watch_trades_resubscribes_when_dropped_and_shows_nothing_twice(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first subscription sends trades 1 and 2, then ABORTED; the second, asked to
    # resume after trade 2, sends 2 again (same log position), then 3.
    status, out, err = await run_text(
        canned_exchange.target, capsys, "watch", "trades", "lagging-trades", "--count", "3"
    )
    assert status == 0
    assert out == [TRADE_LINE.format(1), TRADE_LINE.format(2), TRADE_LINE.format(3)]
    assert err == (
        "warning: ABORTED: subscriber lagged; resubscribe [resubscribing, attempt 1 of 5]\n"
    )
    assert canned_exchange.market_data.trade_after_positions["lagging-trades"] == [
        "",
        "p-BTC-USD-2",
    ]


async def test_watch_orders_resubscribes_when_dropped_and_shows_nothing_twice(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, messages, err = await run_json(
        canned_exchange.target,
        capsys,
        "watch",
        "orders",
        "--user",
        "lagging-orders",
        "--count",
        "3",
    )
    assert status == 0
    assert [(m["position"], m["event_type"]) for m in messages] == [
        ("p-9", "OrderPartiallyFilled"),
        ("p-10", "OrderAccepted"),
        ("p-11", "OrderCancelled"),
    ]
    # With --json the notice is a JSON line too.
    assert json.loads(err) == {
        "warning": "ABORTED",
        "message": "subscriber lagged; resubscribe",
        "reconnect_in_seconds": 0.0,
        "attempt": 1,
        "retries": 5,
        "not_shown": "order updates meanwhile are not shown",
    }
    assert canned_exchange.market_data.order_update_subscriptions["lagging-orders"] == 2


async def test_watch_gives_up_after_retries_that_bring_nothing_new(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    # "slow" sends the same two updates and ABORTED on every subscription.
    status, out, err = await run_text(
        canned_exchange.target, capsys, "watch", "orders", "--user", "slow", "--retries", "2"
    )
    assert status == 1
    assert out == [
        "OrderPartiallyFilled o-1 BTC-USD BUY PARTIALLY_FILLED filled 0.5000/1.5000 "
        "fill 0.5000 @ 44999.50",
        "OrderAccepted o-3 BTC-USD BUY OPEN filled 0.0000/1.5000",
    ]
    notice = (
        "warning: ABORTED: subscriber lagged; resubscribe [resubscribing, attempt {} of 2; "
        "order updates meanwhile are not shown]\n"
    )
    assert err == (
        notice.format(1)
        + notice.format(2)
        + "error: ABORTED: subscriber lagged; resubscribe (gave up after 2 reconnect attempts)\n"
    )


# --- the service going away --------------------------------------------------------------------


async def test_watch_book_reports_the_service_ending_the_stream_and_exits_1(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str], quick_reconnects: None
) -> None:
    # "closing...": the stream ends after an update, later subscriptions get UNAVAILABLE.
    status, out, err = await run_text(
        canned_exchange.target, capsys, "watch", "book", "closing-book", "--retries", "2"
    )
    assert status == 1
    assert out[-2:] == ["snapshot, sequence 7", "#8 SELL 101.00 -> 0 (0), BUY 100.00 -> 1.5 (1)"]
    assert err == (
        "warning: UNAVAILABLE: the service ended the stream "
        "[reconnecting in 0.001 s, attempt 1 of 2]\n"
        "warning: UNAVAILABLE: the service is shutting down "
        "[reconnecting in 0.002 s, attempt 2 of 2]\n"
        "error: UNAVAILABLE: the service is shutting down (gave up after 2 reconnect attempts)\n"
    )


async def test_watch_with_no_retries_exits_1_when_the_stream_ends(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, messages, err = await run_json(
        canned_exchange.target, capsys, "watch", "book", "closing-now", "--retries", "0"
    )
    assert (status, [m["sequence"] for m in messages]) == (1, [7, 8])
    assert json.loads(err) == {
        "error": "UNAVAILABLE",
        "message": "the service ended the stream",
        "reason": "",
        "field_violations": [],
    }


class _LinesOut(io.StringIO):
    """A stdout that tells when it has received `wanted` lines."""

    def __init__(self, wanted: int) -> None:
        super().__init__()
        self.wanted = wanted
        self.arrived = asyncio.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.getvalue().count("\n") >= self.wanted:
            self.arrived.set()
        return written


async def test_watch_exits_1_when_the_server_stops_under_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    quick_reconnects: None,
) -> None:
    server, exchange = await start_canned_exchange()
    out = _LinesOut(wanted=2)
    monkeypatch.setattr(sys, "stdout", out)
    argv = ["--target", exchange.target, "--json", "watch", "trades", "endless-stop"]
    watcher = asyncio.create_task(run([*argv, "--retries", "1"]))
    await asyncio.wait_for(out.arrived.wait(), 10)
    await server.stop(grace=None)
    status = await asyncio.wait_for(watcher, 10)
    assert status == 1
    assert [json.loads(line)["position"] for line in out.getvalue().splitlines()] == [
        "p-BTC-USD-1",
        "p-BTC-USD-2",
    ]
    # The call is cancelled by the stopping server, then nothing listens on the port any
    # more; grpc words both as UNAVAILABLE with its own message.
    dropped, gave_up = map(json.loads, capsys.readouterr().err.splitlines())
    assert dropped["warning"] == "UNAVAILABLE"
    assert {key: value for key, value in dropped.items() if key != "message"} == {
        "warning": "UNAVAILABLE",
        "reconnect_in_seconds": 0.001,
        "attempt": 1,
        "retries": 1,
    }
    assert gave_up["error"] == "UNAVAILABLE"
    assert gave_up["message"].endswith(" (gave up after 1 reconnect attempt)")


# --- the pieces ------------------------------------------------------------------------------


def test_reconnect_delays_double_up_to_a_cap() -> None:
    assert [reconnect_delay(attempt) for attempt in range(1, 8)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        8.0,
        8.0,
    ]


def test_shown_positions_remember_the_most_recent_ones() -> None:
    shown = ShownPositions(capacity=2)
    for position in ("1:1", "1:2", "1:2", "", "1:3"):
        shown.add(position)
    assert ["1:1" in shown, "1:2" in shown, "1:3" in shown, "" in shown] == [
        False,
        True,
        True,
        False,
    ]
