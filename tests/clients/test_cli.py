"""The `exchange` CLI: argument parsing, and each subcommand against the canned server."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from canned_exchange import CannedExchange
from cli_runs import run_json

from clients.cli import (
    load_plan_from_arguments,
    new_order_from_arguments,
    parse_arguments,
    run,
)
from clients.enums import OrderStatus, OrderType, SelfTradePrevention, Side, TimeInForce
from clients.generated.exchange.v1 import types_pb2
from clients.models import NewOrder

# --- parsing ---------------------------------------------------------------------------------

# What the fake service's instruments show of accounts: nothing (it predates them).
NO_ACCOUNTS = {
    "base_asset": "",
    "quote_asset": "",
    "maker_fee_bps": 0,
    "taker_fee_bps": 0,
    "status": "TRADING",
}


def test_target_defaults_to_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXCHANGE_TARGET", raising=False)
    assert parse_arguments(["ping"]).target == "localhost:50051"


def test_target_from_environment_and_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCHANGE_TARGET", "exchange.example:6000")
    assert parse_arguments(["ping"]).target == "exchange.example:6000"
    assert parse_arguments(["--target", "10.0.0.1:1", "ping"]).target == "10.0.0.1:1"


def test_place_arguments_become_a_new_order() -> None:
    arguments = parse_arguments(
        [
            "place",
            "--user",
            "alice",
            "--instrument",
            "BTC-USD",
            "--side",
            "sell",
            "--type",
            "stop-limit",
            "--price",
            "45000.00",
            "--stop-price",
            "44000.5",
            "--quantity",
            " 1.5000",
            "--tif",
            "gtd",
            "--expire-time",
            "2026-01-01T00:00:05Z",
            "--post-only",
            "--max-slippage-bps",
            "30",
            "--stp",
            "CANCEL_OLDEST",
            "--client-order-id",
            "c-9",
        ]
    )
    assert new_order_from_arguments(arguments) == NewOrder(
        user_id="alice",
        instrument="BTC-USD",
        side=Side.SELL,
        type=OrderType.STOP_LIMIT,
        price="45000.00",
        stop_price="44000.5",
        quantity="1.5000",
        time_in_force=TimeInForce.GTD,
        expire_time=datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC),
        post_only=True,
        max_slippage_bps=30,
        stp=SelfTradePrevention.CANCEL_OLDEST,
        client_order_id="c-9",
    )


def test_place_defaults_to_gtc_limit() -> None:
    arguments = parse_arguments(
        ["place", "--user", "u", "--instrument", "ETH-USD", "--side", "BUY", "--quantity", "1"]
    )
    order = new_order_from_arguments(arguments)
    assert (order.type, order.time_in_force, order.stp) == (
        OrderType.LIMIT,
        TimeInForce.GTC,
        SelfTradePrevention.UNSPECIFIED,
    )
    assert (order.price, order.stop_price, order.expire_time, order.post_only) == (
        None,
        None,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (
            ["place", "--user", "u", "--instrument", "X", "--side", "up", "--quantity", "1"],
            "'up' is not one of BUY, SELL",
        ),
        (
            ["place", "--user", "u", "--instrument", "X", "--side", "buy", "--quantity", "1.2.3"],
            "'1.2.3' is not a decimal number",
        ),
        (
            ["place", "--user", "u", "--instrument", "X", "--side", "buy", "--quantity", "NaN"],
            "'NaN' is not a finite decimal number",
        ),
        (
            [
                "place",
                "--user",
                "u",
                "--instrument",
                "X",
                "--side",
                "buy",
                "--quantity",
                "1",
                "--expire-time",
                "2026-01-01T00:00:00",
            ],
            "has no time zone",
        ),
        (
            ["place", "--user", "u", "--instrument", "X", "--side", "buy"],
            "the following arguments are required: --quantity",
        ),
        (["orders", "--user", "u", "--status", "done"], "'done' is not one of PENDING"),
        (["load", "--concurrency", "0"], "'0' must be at least 1"),
        (["watch", "book"], "the following arguments are required: instrument"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_arguments(argv)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


def test_orders_status_and_watch_arguments() -> None:
    orders = parse_arguments(["orders", "--user", "u", "--status", "partially-filled", "--all"])
    assert orders.status is OrderStatus.PARTIALLY_FILLED
    assert orders.all is True
    watch = parse_arguments(["watch", "--count", "3", "book", "BTC-USD", "--depth", "5"])
    assert (watch.stream, watch.instrument, watch.depth, watch.count) == ("book", "BTC-USD", 5, 3)


@pytest.mark.parametrize(
    ("argv", "count", "retries"),
    [
        (["watch", "trades", "BTC-USD", "--count", "2"], 2, 5),
        (["watch", "--count", "2", "trades", "BTC-USD"], 2, 5),
        (["watch", "trades", "BTC-USD"], None, 5),
        (["watch", "--retries", "0", "trades", "BTC-USD", "--count", "7"], 7, 0),
        (["watch", "--count", "3", "trades", "BTC-USD", "--count", "2"], 2, 5),
        (["watch", "book", "BTC-USD", "--depth", "5", "--count", "1", "--retries", "9"], 1, 9),
        (["watch", "orders", "--user", "u", "--count", "4"], 4, 5),
    ],
)
def test_watch_options_go_before_or_after_the_stream(
    argv: list[str], count: int | None, retries: int
) -> None:
    arguments = parse_arguments(argv)
    assert (arguments.count, arguments.retries) == (count, retries)


def test_connection_options_go_before_or_after_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EXCHANGE_TARGET", raising=False)
    defaults = parse_arguments(["ping"])
    assert (defaults.target, defaults.timeout, defaults.json) == ("localhost:50051", 10.0, False)
    before = parse_arguments(["--json", "--target", "h:1", "--timeout", "3", "book", "X"])
    after = parse_arguments(["book", "X", "--json", "--target", "h:1", "--timeout", "3"])
    assert (before.target, before.timeout, before.json) == ("h:1", 3.0, True)
    assert (after.target, after.timeout, after.json) == ("h:1", 3.0, True)
    nested = parse_arguments(["watch", "trades", "X", "--json", "--target", "h:2"])
    assert (nested.target, nested.timeout, nested.json) == ("h:2", 10.0, True)
    # Given both before and after the command, the one after wins.
    assert parse_arguments(["--target", "h:1", "ping", "--target", "h:2"]).target == "h:2"


def test_load_arguments_become_a_plan() -> None:
    arguments = parse_arguments(
        [
            "--target",
            "h:1",
            "load",
            "--orders",
            "500",
            "--concurrency",
            "4",
            "--rate",
            "250",
            "--mode",
            "stream",
            "--window",
            "16",
            "--instrument",
            "ETH-USD",
            "--seed",
            "7",
        ]
    )
    plan = load_plan_from_arguments(arguments)
    assert (plan.target, plan.orders, plan.concurrency, plan.rate) == ("h:1", 500, 4, 250.0)
    assert (plan.mode, plan.window, plan.instrument, plan.seed) == ("stream", 16, "ETH-USD", 7)
    assert plan.mid_price == Decimal("50000")


# --- against the canned server ---------------------------------------------------------------


async def test_place_prints_the_pending_order_as_json(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines, _ = await run_json(
        canned_exchange.target,
        capsys,
        "place",
        "--user",
        "carol",
        "--instrument",
        "BTC-USD",
        "--side",
        "buy",
        "--price",
        "45000.00",
        "--quantity",
        "0.2500",
        "--tif",
        "ioc",
    )
    assert status == 0
    [placed] = lines
    order = placed["order"]
    assert isinstance(order, dict)
    assert (order["user_id"], order["side"], order["status"]) == ("carol", "BUY", "PENDING")
    assert (order["price"], order["quantity"], order["time_in_force"]) == (
        "45000.00",
        "0.2500",
        "IOC",
    )
    assert order["created_at"] == "2026-01-02T03:04:05.123456Z"
    assert placed["duplicate"] is False
    sent = canned_exchange.commands.placed[-1]
    assert sent.time_in_force == types_pb2.TIME_IN_FORCE_IOC


async def test_refused_command_exits_1_with_field_violations(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    status = await run(
        [
            "--target",
            canned_exchange.target,
            "place",
            "--user",
            "carol",
            "--instrument",
            "BTC-USD",
            "--side",
            "buy",
            "--price",
            "1.001",
            "--quantity",
            "1",
        ]
    )
    captured = capsys.readouterr()
    assert status == 1
    assert captured.out == ""
    assert captured.err == (
        "error: INVALID_ARGUMENT: invalid order\n"
        "  price: price 0.001 is not a multiple of 0.01 [OFF_TICK_GRID]\n"
    )


async def test_refused_command_as_json(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines, err = await run_json(
        canned_exchange.target, capsys, "cancel", "--user", "alice", "closed"
    )
    assert (status, lines) == (1, [])
    assert json.loads(err) == {
        "error": "FAILED_PRECONDITION",
        "message": "order closed is FILLED",
        "reason": "ORDER_CLOSED",
        "field_violations": [],
    }


async def test_get_orders_book_trades_instruments_as_json(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    target = canned_exchange.target
    _, [order], _ = await run_json(target, capsys, "get", "o-7", "--min-position", "p-1")
    # At BTC-USD's precision: lot 0.0001, tick 0.01 (+2 digits for the average).
    assert (order["order_id"], order["filled_quantity"], order["average_price"]) == (
        "o-7",
        "0.5000",
        "44999.5000",
    )
    _, pages, _ = await run_json(target, capsys, "orders", "--user", "alice", "--all")
    assert [[o["order_id"] for o in page["orders"]] for page in pages] == [  # type: ignore[attr-defined]
        ["o-2", "o-1"],
        ["o-0"],
    ]
    _, [book], _ = await run_json(target, capsys, "book", "BTC-USD", "--depth", "2")
    assert book["bids"] == [
        {"price": "44999.50", "quantity": "1.2500", "order_count": 2},
        {"price": "44990.00", "quantity": "3.0000", "order_count": 1},
    ]
    assert (book["sequence"], book["last_price"]) == (42, "45000.00")
    _, [trades], _ = await run_json(target, capsys, "trades", "BTC-USD")
    assert [t["trade_id"] for t in trades["trades"]] == ["BTC-USD-2", "BTC-USD-1"]  # type: ignore[index]
    _, [instruments], _ = await run_json(target, capsys, "instruments")
    assert instruments == [
        {"symbol": "BTC-USD", "tick_size": "0.01", "lot_size": "0.0001", "min_quantity": None}
        | NO_ACCOUNTS,
        {"symbol": "ETH-USD", "tick_size": "0.01", "lot_size": "0.001", "min_quantity": "0.01"}
        | NO_ACCOUNTS,
    ]


async def test_watch_stops_after_count(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    _, messages, _ = await run_json(
        canned_exchange.target, capsys, "watch", "--count", "1", "trades", "endless-cli"
    )
    assert [message["trade"]["trade_id"] for message in messages] == ["BTC-USD-1"]  # type: ignore[index]
    # Stopping after --count cancels the call: the parked server handler ends.
    ended = canned_exchange.market_data.trade_streams_ended["endless-cli"]
    await asyncio.wait_for(ended.wait(), 10)
    _, book_messages, _ = await run_json(
        canned_exchange.target, capsys, "watch", "--count", "2", "book", "endless-book"
    )
    assert [message["sequence"] for message in book_messages] == [7, 8]
    assert book_messages[1]["changes"][0] == {  # type: ignore[index]
        "side": "SELL",
        "price": "101.00",
        "quantity": "0",
        "order_count": 0,
    }


async def test_human_output_renders_tables(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert await run(["--target", canned_exchange.target, "book", "BTC-USD"]) == 0
    out = capsys.readouterr().out
    assert "44999.50" in out and "45001.00" in out and "sequence 42" in out
    argv = ["--target", canned_exchange.target, "watch", "--count", "2", "orders"]
    assert await run([*argv, "--user", "endless-a"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "OrderPartiallyFilled o-1 BTC-USD BUY PARTIALLY_FILLED filled 0.5000/1.5000 "
        "fill 0.5000 @ 44999.50",
        "OrderAccepted o-3 BTC-USD BUY OPEN filled 0.0000/1.5000",
    ]


async def test_load_in_ping_mode_places_nothing(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    placed_before = len(canned_exchange.commands.placed)
    status, [report], _ = await run_json(
        canned_exchange.target,
        capsys,
        "load",
        "--orders",
        "40",
        "--concurrency",
        "2",
        "--mode",
        "ping",
        "--no-progress",
    )
    assert status == 0
    assert (report["orders"], report["accepted"], report["refused"]) == (40, 40, 0)
    assert len(canned_exchange.commands.placed) == placed_before


@pytest.mark.parametrize("mode", ["unary", "stream"])
async def test_load_reports_every_order(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    placed_before = len(canned_exchange.commands.placed)
    status, [report], _ = await run_json(
        canned_exchange.target,
        capsys,
        "load",
        "--orders",
        "61",
        "--concurrency",
        "3",
        "--mode",
        mode,
        "--window",
        "4",
        "--no-progress",
    )
    assert status == 0
    assert (report["orders"], report["accepted"], report["refused"]) == (61, 61, 0)
    assert report["errors_by_code"] == {}
    assert len(canned_exchange.commands.placed) - placed_before == 61
    latencies = [report[f"latency_p{p}_ms"] for p in (50, 95, 99)] + [report["latency_max_ms"]]
    assert latencies == sorted(latencies)  # type: ignore[type-var]
    sent = canned_exchange.commands.placed[-61:]
    assert {request.instrument for request in sent} == {"BTC-USD"}
    assert all(Decimal(request.price) % Decimal("0.01") == 0 for request in sent)
    assert all(Decimal(request.quantity) % Decimal("0.0001") == 0 for request in sent)


async def test_watch_book_resubscribes_after_a_sequence_gap(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    _, messages, err = await run_json(
        canned_exchange.target, capsys, "watch", "--count", "3", "book", "GAPPY"
    )
    # Snapshot 7, then 9 instead of 8: the update is not shown, a fresh snapshot is fetched.
    assert [(m["sequence"], "bids" in m) for m in messages] == [(7, True), (7, True), (8, False)]
    assert json.loads(err) == {
        "warning": "DATA_LOSS",
        "message": "book update 9 received, 8 expected; resubscribe",
        "reconnect_in_seconds": 0.0,
        "attempt": 1,
        "retries": 5,
    }
    assert canned_exchange.market_data.book_subscriptions["GAPPY"] == 2


async def test_load_human_report_names_the_unit(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    argv = ["--target", canned_exchange.target, "load", "--orders", "10", "--no-progress"]
    assert await run([*argv, "--mode", "ping"]) == 0
    out = capsys.readouterr().out
    assert "10 calls, ping, 8 clients, rate max" in out and "calls/s" in out
    assert await run([*argv, "--rate", "500"]) == 0
    out = capsys.readouterr().out
    assert "10 orders, unary, 8 clients, rate 500/s" in out and "orders/s" in out
    assert "latency p99" in out


async def test_load_wait_asks_for_each_orders_outcome(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    argv = ["--target", canned_exchange.target, "load", "--orders", "6", "--no-progress"]
    for mode in ("unary", "stream"):
        placed_before = len(canned_exchange.commands.placed)
        assert await run([*argv, "--mode", mode, "--wait"]) == 0
        out = capsys.readouterr().out
        assert f"6 orders, {mode}, 8 clients, rate max, waiting for outcomes" in out
        placed = canned_exchange.commands.placed[placed_before:]
        assert len(placed) == 6 and all(request.wait_for_outcome for request in placed)


async def test_place_wait_asks_the_service_for_the_engines_outcome(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    reads_before = len(canned_exchange.queries.requests)
    status, [placed], _ = await run_json(
        canned_exchange.target,
        capsys,
        "place",
        "--user",
        "alice",
        "--instrument",
        "BTC-USD",
        "--side",
        "buy",
        "--price",
        "45000.00",
        "--quantity",
        "1.5000",
        "--wait",
    )
    assert status == 0
    order = placed["order"]
    assert order["status"] == "PARTIALLY_FILLED"  # type: ignore[index]
    assert str(placed["position"]).endswith("-answer")
    assert canned_exchange.commands.placed[-1].wait_for_outcome
    # One call: no reading the order back, no polling.
    assert canned_exchange.queries.requests[reads_before:] == []


async def test_place_wait_gives_up_after_the_timeout(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    canned_exchange.commands.engine_answers = False
    try:
        capsys.readouterr()
        status = await run(
            [
                "--target",
                canned_exchange.target,
                "--timeout",
                "0.3",
                "place",
                "--user",
                "alice",
                "--instrument",
                "BTC-USD",
                "--side",
                "buy",
                "--price",
                "1.00",
                "--quantity",
                "1",
                "--wait",
            ]
        )
    finally:
        canned_exchange.commands.engine_answers = True
    assert status == 1
    assert capsys.readouterr().err.startswith("error: DEADLINE_EXCEEDED: ")
