"""`exchange`: the command-line client of the exchange's gRPC API.

    exchange place --user alice --instrument BTC-USD --side buy --price 45000.00 --quantity 1.5
    exchange cancel --user alice ORDER_ID
    exchange cancel-all --user alice [--instrument BTC-USD]
    exchange amend --user alice ORDER_ID --quantity 1.0 --price 44990.00
    exchange get ORDER_ID            exchange orders --user alice --status open
    exchange book BTC-USD --depth 10 exchange trades BTC-USD
    exchange watch trades BTC-USD    exchange watch book BTC-USD
    exchange watch orders --user alice
    exchange instruments             exchange ping
    exchange load --orders 10000 --concurrency 8 --rate 2000 [--mode stream]

`--target host:port` (default: $EXCHANGE_TARGET, else localhost:50051); `--json` prints one
JSON object per line instead of tables. Exit status: 0 on success, 1 when the service
refuses or fails a call (the status and field violations go to stderr), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import grpc
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clients import render
from clients.book_mirror import BookSequenceGap, OrderBookMirror
from clients.client import DEFAULT_TARGET, ExchangeClient
from clients.conversions import parse_decimal
from clients.enums import (
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
    parse_member,
)
from clients.errors import AbortedError, ExchangeError, make_error
from clients.loadgen import LoadPlan, LoadReport, run_load
from clients.models import BookSnapshot, CommandResult, NewOrder, Order, PlaceResult

TARGET_ENVIRONMENT_VARIABLE = "EXCHANGE_TARGET"
PIPED_OUTPUT_WIDTH = 250


# --- argument types ------------------------------------------------------------------------


def decimal_argument(text: str) -> str:
    """A decimal string, checked here and sent as typed (the service judges the grid)."""
    try:
        parse_decimal(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text.strip()


def _enum_argument(enum_type: Any) -> Any:
    def parse(text: str) -> Any:
        if isinstance(text, enum_type):
            return text  # argparse also runs string defaults (StrEnum members) through here
        try:
            return parse_member(enum_type, text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = enum_type.__name__
    return parse


def datetime_argument(text: str) -> datetime:
    """An RFC 3339 time with a zone, e.g. 2026-01-01T00:00:05Z."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone (add Z or +00:00)")
    return moment


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


# --- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exchange",
        description="Command-line client of the exchange gRPC API (package exchange.v1).",
    )
    parser.add_argument(
        "--target",
        default=os.environ.get(TARGET_ENVIRONMENT_VARIABLE, DEFAULT_TARGET),
        help=f"host:port of the service (default: ${TARGET_ENVIRONMENT_VARIABLE}, "
        f"else {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        help="deadline of each unary call in seconds (default 10)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines, not tables")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("ping", help="call the no-op Ping RPC")

    place = commands.add_parser("place", help="place an order")
    place.add_argument("--user", required=True, dest="user_id")
    place.add_argument("--instrument", required=True)
    place.add_argument("--side", required=True, type=_enum_argument(Side), help="buy or sell")
    place.add_argument(
        "--type",
        dest="order_type",
        type=_enum_argument(OrderType),
        default=OrderType.LIMIT,
        help="limit (default), market, stop-limit, stop-market",
    )
    place.add_argument("--price", type=decimal_argument, help="limit price")
    place.add_argument("--quantity", required=True, type=decimal_argument)
    place.add_argument("--stop-price", type=decimal_argument, help="stop orders' trigger")
    place.add_argument(
        "--tif",
        dest="time_in_force",
        type=_enum_argument(TimeInForce),
        default=TimeInForce.GTC,
        help="gtc (default), ioc, fok, gtd",
    )
    place.add_argument(
        "--expire-time", type=datetime_argument, help="GTD expiry, RFC 3339 with zone"
    )
    place.add_argument("--post-only", action="store_true")
    place.add_argument("--max-slippage-bps", type=non_negative_int, default=0)
    place.add_argument(
        "--stp",
        type=_enum_argument(SelfTradePrevention),
        default=SelfTradePrevention.UNSPECIFIED,
        help="self-trade prevention: cancel-newest (default), cancel-oldest, cancel-both, none",
    )
    place.add_argument("--client-order-id", default="", help="idempotency key, per user")
    place.add_argument(
        "--wait",
        action="store_true",
        help="show the order once the engine has processed it (not PENDING), within --timeout",
    )

    cancel = commands.add_parser("cancel", help="cancel an order")
    cancel.add_argument("--user", required=True, dest="user_id")
    cancel.add_argument("order_id")

    cancel_all = commands.add_parser(
        "cancel-all", help="cancel every open order of a user (one instrument, or all)"
    )
    cancel_all.add_argument("--user", required=True, dest="user_id")
    cancel_all.add_argument("--instrument", help="only this instrument's orders")

    amend = commands.add_parser("amend", help="amend an order (cancel/replace)")
    amend.add_argument("--user", required=True, dest="user_id")
    amend.add_argument("order_id")
    amend.add_argument("--price", type=decimal_argument, help="new limit price")
    amend.add_argument(
        "--quantity", type=decimal_argument, help="new TOTAL quantity, filled part included"
    )

    get = commands.add_parser("get", help="show one order")
    get.add_argument("order_id")
    get.add_argument("--user", default="", dest="user_id", help="require this owner")
    get.add_argument("--min-position", default="", help="wait until views reach this position")

    orders = commands.add_parser("orders", help="list a user's orders, most recent first")
    orders.add_argument("--user", required=True, dest="user_id")
    orders.add_argument("--instrument", default="")
    orders.add_argument(
        "--status", type=_enum_argument(OrderStatus), default=OrderStatus.UNSPECIFIED
    )
    orders.add_argument("--page-size", type=non_negative_int, default=0)
    orders.add_argument("--page-token", default="")
    orders.add_argument("--all", action="store_true", help="follow page tokens to the end")
    orders.add_argument("--min-position", default="")

    book = commands.add_parser("book", help="show an instrument's aggregated book")
    book.add_argument("instrument")
    book.add_argument("--depth", type=non_negative_int, default=10, help="0: whole book")
    book.add_argument("--min-position", default="")

    trades = commands.add_parser("trades", help="list an instrument's trades, most recent first")
    trades.add_argument("instrument")
    trades.add_argument("--page-size", type=non_negative_int, default=0)
    trades.add_argument("--page-token", default="")
    trades.add_argument("--min-position", default="")

    commands.add_parser("instruments", help="list the configured instruments")

    watch = commands.add_parser("watch", help="follow a live stream")
    watch.add_argument(
        "--count", type=positive_int, default=None, help="stop after this many messages"
    )
    streams = watch.add_subparsers(dest="stream", required=True, metavar="STREAM")
    watch_trades = streams.add_parser("trades", help="trades of an instrument")
    watch_trades.add_argument("instrument")
    watch_book = streams.add_parser("book", help="book snapshot, then level updates")
    watch_book.add_argument("instrument")
    watch_book.add_argument("--depth", type=non_negative_int, default=0)
    watch_orders = streams.add_parser("orders", help="changes of a user's orders")
    watch_orders.add_argument("--user", required=True, dest="user_id")
    watch_orders.add_argument("--instrument", default="")

    load = commands.add_parser(
        "load", help="load generator: throughput and latency percentiles of order entry"
    )
    load.add_argument("--orders", type=positive_int, default=10_000, help="total orders")
    load.add_argument(
        "--concurrency", type=positive_int, default=8, help="concurrent clients (channels)"
    )
    load.add_argument(
        "--rate", type=positive_float, default=None, help="target orders/s (default: max)"
    )
    load.add_argument("--instrument", default="BTC-USD")
    load.add_argument(
        "--mode",
        choices=("unary", "stream", "ping"),
        default="unary",
        help="PlaceOrder calls, the StreamPlaceOrders stream, or no-op Pings (baseline)",
    )
    load.add_argument("--window", type=positive_int, default=64, help="in-flight orders per stream")
    load.add_argument("--users", type=positive_int, default=10)
    load.add_argument("--mid-price", type=decimal_argument, default="50000")
    load.add_argument("--seed", type=int, default=1)
    load.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def new_order_from_arguments(arguments: argparse.Namespace) -> NewOrder:
    return NewOrder(
        user_id=arguments.user_id,
        instrument=arguments.instrument,
        side=arguments.side,
        type=arguments.order_type,
        price=arguments.price,
        quantity=arguments.quantity,
        stop_price=arguments.stop_price,
        time_in_force=arguments.time_in_force,
        expire_time=arguments.expire_time,
        post_only=arguments.post_only,
        max_slippage_bps=arguments.max_slippage_bps,
        stp=arguments.stp,
        client_order_id=arguments.client_order_id,
    )


def load_plan_from_arguments(arguments: argparse.Namespace) -> LoadPlan:
    return LoadPlan(
        target=arguments.target,
        orders=arguments.orders,
        concurrency=arguments.concurrency,
        instrument=arguments.instrument,
        rate=arguments.rate,
        mode=arguments.mode,
        window=arguments.window,
        users=arguments.users,
        mid_price=Decimal(arguments.mid_price),
        seed=arguments.seed,
    )


# --- commands ------------------------------------------------------------------------------


class Output:
    """Where results go: JSON lines on stdout, or rich tables."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
        if not self.console.is_terminal:
            # Piped output has no width to fit; 80 columns would truncate ids and times.
            self.console.width = PIPED_OUTPUT_WIDTH

    def show(self, value: Any, table: Any | None = None) -> None:
        if self.as_json:
            print(render.json_line(value), flush=True)
        else:
            self.console.print(table if table is not None else value)


async def _run_command(arguments: argparse.Namespace, output: Output) -> None:
    command = arguments.command
    if command == "load":
        await _run_load(arguments, output)
        return
    async with ExchangeClient.connect(arguments.target, timeout=arguments.timeout) as exchange:
        if command == "ping":
            await exchange.ping()
            output.show({"ok": True}, "pong")
        elif command == "place":
            placed = await exchange.place_order(new_order_from_arguments(arguments))
            if arguments.wait:
                placed = dataclasses.replace(
                    placed, order=await wait_until_processed(exchange, placed, arguments.timeout)
                )
            title = f"position {placed.position}" + (" (duplicate)" if placed.duplicate else "")
            output.show(placed, render.order_table(placed.order, title=title))
        elif command == "cancel":
            result = await exchange.cancel_order(arguments.user_id, arguments.order_id)
            output.show(result, _command_result_table(result))
        elif command == "cancel-all":
            position = await exchange.cancel_all_orders(
                arguments.user_id, instrument=arguments.instrument
            )
            output.show({"position": position}, f"cancel-all written at position {position}")
        elif command == "amend":
            result = await exchange.amend_order(
                arguments.user_id,
                arguments.order_id,
                price=arguments.price,
                quantity=arguments.quantity,
            )
            output.show(result, _command_result_table(result))
        elif command == "get":
            order = await exchange.get_order(
                arguments.order_id, user_id=arguments.user_id, min_position=arguments.min_position
            )
            output.show(order, render.order_table(order))
        elif command == "orders":
            await _list_orders(exchange, arguments, output)
        elif command == "book":
            book = await exchange.get_order_book(
                arguments.instrument, depth=arguments.depth, min_position=arguments.min_position
            )
            output.show(book, render.order_book_table(book))
        elif command == "trades":
            page = await exchange.list_trades(
                arguments.instrument,
                page_size=arguments.page_size,
                page_token=arguments.page_token,
                min_position=arguments.min_position,
            )
            if output.as_json:
                output.show(page)
            else:
                output.show(page, render.trades_table(page.trades))
                if page.next_page_token:
                    output.console.print(f"next page: --page-token {page.next_page_token}")
        elif command == "instruments":
            instruments = await exchange.list_instruments()
            output.show(instruments, render.instruments_table(instruments))
        elif command == "watch":
            await _watch(exchange, arguments, output)
        else:  # pragma: no cover - argparse only accepts the commands above
            raise AssertionError(command)


# How often --wait looks again while the engine has not processed the order yet.
WAIT_POLL_SECONDS = 0.05


async def wait_until_processed(
    exchange: ExchangeClient, placed: PlaceResult, timeout: float
) -> Order:
    """The order as the views show it once it is no longer PENDING. The first read waits for
    the views to reach the place's own position (read-your-writes); the engine's answer is
    appended after that, so look again until it shows. DeadlineExceededError after timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    order_id = placed.order.order_id
    order = await exchange.get_order(order_id, min_position=placed.position, timeout=timeout)
    while order.status is OrderStatus.PENDING:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise make_error(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"order {order_id} still PENDING after {timeout:g} s",
            )
        await asyncio.sleep(min(WAIT_POLL_SECONDS, remaining))
        order = await exchange.get_order(order_id, timeout=max(remaining, 0.001))
    return order


def _command_result_table(result: CommandResult) -> Table:
    return render.order_table(result.order, title=f"position {result.position}")


async def _list_orders(
    exchange: ExchangeClient, arguments: argparse.Namespace, output: Output
) -> None:
    page_token = arguments.page_token
    while True:
        page = await exchange.list_orders(
            arguments.user_id,
            instrument=arguments.instrument,
            status=arguments.status,
            page_size=arguments.page_size,
            page_token=page_token,
            min_position=arguments.min_position,
        )
        if output.as_json:
            output.show(page)
        else:
            output.show(page, render.orders_table(page.orders))
        page_token = page.next_page_token
        if not page_token:
            return
        if not arguments.all:
            if not output.as_json:
                output.console.print(f"next page: --page-token {page_token}")
            return


async def _watch(exchange: ExchangeClient, arguments: argparse.Namespace, output: Output) -> None:
    if arguments.stream == "book":
        await _watch_book(exchange, arguments, output)
        return
    remaining = arguments.count
    if arguments.stream == "trades":
        stream: Any = exchange.stream_trades(arguments.instrument)
        line: Callable[[Any], str] = render.trade_line
    else:
        stream = exchange.stream_order_updates(arguments.user_id, instrument=arguments.instrument)
        line = render.order_update_line
    try:
        async for message in stream:
            if output.as_json:
                output.show(message)
            else:
                output.console.print(line(message))
            if remaining is not None:
                remaining -= 1
                if remaining == 0:
                    break
    finally:
        await stream.aclose()


async def _watch_book(
    exchange: ExchangeClient, arguments: argparse.Namespace, output: Output
) -> None:
    """Follow the book through a local mirror that checks every sequence number; on a gap
    or when the service drops this slow subscriber, resubscribe for a fresh snapshot. On a
    terminal the book is redrawn in place; otherwise each message is one line (or JSON)."""
    remaining = arguments.count
    depth = arguments.depth
    redraw = not output.as_json and output.console.is_terminal
    live = Live(console=output.console, auto_refresh=False) if redraw else None
    with live if live is not None else contextlib.nullcontext():
        while True:
            mirror = OrderBookMirror(arguments.instrument)
            stream = exchange.stream_order_book(arguments.instrument, depth=depth)
            try:
                async for message in stream:
                    mirror.apply(message)
                    if output.as_json:
                        output.show(message)
                    elif live is not None:
                        table = render.book_table(
                            mirror.instrument,
                            mirror.bids(depth),
                            mirror.asks(depth),
                            caption=f"sequence {mirror.sequence}",
                        )
                        live.update(table, refresh=True)
                    elif isinstance(message, BookSnapshot):
                        output.console.print(
                            render.book_table(
                                message.instrument,
                                message.bids,
                                message.asks,
                                caption=f"snapshot, sequence {message.sequence}",
                            )
                        )
                    else:
                        output.console.print(render.book_message_line(message))
                    if remaining is not None:
                        remaining -= 1
                        if remaining == 0:
                            return
                return  # The service ended the stream.
            except (BookSequenceGap, AbortedError) as problem:
                print(f"{problem}; resubscribing", file=sys.stderr)
            finally:
                await stream.aclose()


async def _run_load(arguments: argparse.Namespace, output: Output) -> None:
    plan = load_plan_from_arguments(arguments)
    show_progress = not arguments.no_progress and not output.as_json
    progress = Progress(
        TextColumn(f"[bold]{plan.mode}[/bold] x{plan.concurrency}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        disable=not show_progress,
    )
    with progress:
        task = progress.add_task("orders", total=plan.orders, rate="")
        answered = 0

        def advance() -> None:
            nonlocal answered
            answered += 1
            # Updating the bar per order would cost more than the order at high rates.
            if answered % 100 == 0 or answered == plan.orders:
                progress.update(task, completed=answered)

        report = await run_load(plan, on_answer=advance)
        progress.update(task, completed=answered, rate=f"{report.throughput:,.0f}/s")
    output.show(report.summary(), load_report_table(plan, report))


def load_report_table(plan: LoadPlan, report: LoadReport) -> Table:
    rate = f"{plan.rate:g}/s" if plan.rate else "max"
    unit = "calls" if plan.mode == "ping" else "orders"
    table = Table(
        title=f"{plan.orders} {unit}, {plan.mode}, {plan.concurrency} clients, rate {rate}",
        show_header=False,
    )
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("accepted", str(report.accepted))
    table.add_row("refused", str(report.refused))
    for code, count in sorted(report.errors_by_code.items()):
        table.add_row(f"  {code}", str(count))
    table.add_row("elapsed", f"{report.elapsed_seconds:.2f} s")
    table.add_row("throughput", f"{report.throughput:,.0f} {unit}/s")
    for percent in (50, 95, 99):
        table.add_row(f"latency p{percent}", f"{report.latency_percentile_ms(percent):.2f} ms")
    table.add_row("latency max", f"{report.latency_percentile_ms(100):.2f} ms")
    return table


async def run(argv: Sequence[str] | None = None) -> int:
    """Run one CLI invocation inside a running event loop; returns the exit status."""
    arguments = parse_arguments(argv)
    output = Output(arguments.json)
    try:
        await _run_command(arguments, output)
    except ExchangeError as error:
        if arguments.json:
            print(
                render.json_line(
                    {
                        "error": error.code.name,
                        "message": error.message,
                        "reason": error.reason,
                        "field_violations": list(error.field_violations),
                    }
                ),
                file=sys.stderr,
            )
        else:
            print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (`exchange`)."""
    try:
        return asyncio.run(run(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
