"""`exchange`: the command-line client of the exchange's gRPC API.

    exchange place --user alice --instrument BTC-USD --side buy --price 45000.00 --quantity 1.5
    exchange cancel --user alice ORDER_ID [--no-wait]
    exchange cancel-all --user alice [--instrument BTC-USD] [--no-wait]
    exchange amend --user alice ORDER_ID --quantity 1.0 --price 44990.00 [--wait]
    exchange get ORDER_ID            exchange orders --user alice --status open
    exchange book BTC-USD --depth 10 exchange trades BTC-USD
    exchange watch trades BTC-USD --count 2
    exchange watch book BTC-USD      exchange watch orders --user alice --retries 0
    exchange instruments             exchange ping
    exchange load --orders 10000 --concurrency 8 --rate 2000 [--mode stream] [--wait]
    exchange keys issue --user alice --scope trade [--scope read] [--key-only]
    exchange keys list [--user alice]   exchange keys revoke KEY_ID

Every call shows an API key: `--api-key` (default: $EXCHANGE_API_KEY). `--user` may be
left out: the key's account. `keys` needs an admin key; `load` issues a trade key per
simulated user with `--admin-api-key` (default: $ADMIN_API_KEY, else the API key).
`--target host:port` (default: $EXCHANGE_TARGET, else localhost:50051); `--json` prints one
JSON object per line instead of tables; both, and `--timeout` and `--api-key`, go before
or after the command. Exit status: 0 on success, 1 when the service refuses or fails a
call (the status and field violations go to stderr, with a hint for a refused key), 2 on
bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clients import render
from clients.cli_accounts import ACCOUNT_COMMANDS, add_account_commands, run_account_command
from clients.cli_keys import run_keys_command
from clients.client import DEFAULT_TARGET, ExchangeClient, TlsFiles
from clients.conversions import parse_decimal
from clients.enums import (
    OrderStatus,
    OrderType,
    Scope,
    SelfTradePrevention,
    Side,
    TimeInForce,
    parse_member,
)
from clients.errors import ExchangeError
from clients.loadgen import LoadPlan, LoadReport, run_load
from clients.models import CommandResult, NewOrder
from clients.output import Output
from clients.precision import DisplayPrecision
from clients.render import printable
from clients.watch import DEFAULT_RETRIES, watch

TARGET_ENVIRONMENT_VARIABLE = "EXCHANGE_TARGET"
# --tls-ca, --tls-cert, --tls-key: option -> (destination, environment variable).
TLS_OPTIONS = {
    "--tls-ca": (
        "tls_ca",
        "EXCHANGE_TLS_CA_FILE",
        "CA certificate (PEM) that signed the service's",
    ),
    "--tls-cert": (
        "tls_cert",
        "EXCHANGE_TLS_CERT_FILE",
        "this client's certificate (PEM), for mTLS",
    ),
    "--tls-key": ("tls_key", "EXCHANGE_TLS_KEY_FILE", "this client's private key (PEM), for mTLS"),
}
API_KEY_ENVIRONMENT_VARIABLE = "EXCHANGE_API_KEY"
ADMIN_API_KEY_ENVIRONMENT_VARIABLE = "ADMIN_API_KEY"


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


def _add_connection_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--target, --api-key, --timeout and --json: before the command (`top`) and after it
    as well. After it they default to SUPPRESS, so a subcommand only sets what it was
    given."""
    target_default = os.environ.get(TARGET_ENVIRONMENT_VARIABLE, DEFAULT_TARGET)
    parser.add_argument(
        "--target",
        default=target_default if top else argparse.SUPPRESS,
        help=f"host:port of the service (default: ${TARGET_ENVIRONMENT_VARIABLE}, "
        f"else {DEFAULT_TARGET})",
    )
    # The help never shows the key itself, only where it comes from.
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENVIRONMENT_VARIABLE, "") if top else argparse.SUPPRESS,
        help=f"API key sent with every call (default: ${API_KEY_ENVIRONMENT_VARIABLE})",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0 if top else argparse.SUPPRESS,
        help="deadline of each unary call, and of --wait, in seconds (default 10)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print JSON lines, not tables",
    )
    for option, (destination, variable, meaning) in TLS_OPTIONS.items():
        parser.add_argument(
            option,
            dest=destination,
            default=(os.environ.get(variable) or None) if top else argparse.SUPPRESS,
            help=f"{meaning} (default: ${variable}); any of the three turns TLS on",
        )


def tls_files_of(arguments: argparse.Namespace) -> TlsFiles | None:
    """TLS when any of --tls-ca, --tls-cert, --tls-key is given (or set in the environment);
    plaintext otherwise."""
    ca, cert, key = arguments.tls_ca, arguments.tls_cert, arguments.tls_key
    if ca is None and cert is None and key is None:
        return None
    return TlsFiles(
        ca_file=None if ca is None else Path(ca),
        cert_file=None if cert is None else Path(cert),
        key_file=None if key is None else Path(key),
    )


def _add_watch_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--count and --retries: after `watch` and after the stream's name alike."""
    parser.add_argument(
        "--count",
        type=positive_int,
        default=None if top else argparse.SUPPRESS,
        help="stop after this many messages",
    )
    parser.add_argument(
        "--retries",
        type=non_negative_int,
        default=DEFAULT_RETRIES if top else argparse.SUPPRESS,
        help="reconnect attempts in a row before giving up (default "
        f"{DEFAULT_RETRIES}; 0: exit at the first break)",
    )


# The service takes the account from the key: --user may be left out (an admin key names
# the account it reads).
ACCOUNT_OPTION: dict[str, Any] = {
    "dest": "user_id",
    "default": "",
    "help": "the account (default: the API key's)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exchange",
        description="Command-line client of the exchange gRPC API (package exchange.v1).",
    )
    _add_connection_options(parser, top=True)
    connection = argparse.ArgumentParser(add_help=False)
    _add_connection_options(connection, top=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, parents=[connection])

    command("ping", summary="call the no-op Ping RPC")

    place = command("place", summary="place an order")
    place.add_argument("--user", **ACCOUNT_OPTION)
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

    cancel = command("cancel", summary="cancel an order and show it once cancelled")
    cancel.add_argument("--user", **ACCOUNT_OPTION)
    cancel.add_argument("order_id")
    cancel.add_argument(
        "--no-wait",
        action="store_true",
        help="do not wait for the engine: show the order as it was before the cancel",
    )

    cancel_all = command(
        "cancel-all", summary="cancel every open order of a user (one instrument, or all)"
    )
    cancel_all.add_argument("--user", **ACCOUNT_OPTION)
    cancel_all.add_argument("--instrument", default="", help="only this instrument's orders")
    cancel_all.add_argument(
        "--no-wait",
        action="store_true",
        help="do not wait for the engine: show the request's log position only",
    )

    amend = command("amend", summary="amend an order (cancel/replace)")
    amend.add_argument("--user", **ACCOUNT_OPTION)
    amend.add_argument("order_id")
    amend.add_argument("--price", type=decimal_argument, help="new limit price")
    amend.add_argument(
        "--quantity", type=decimal_argument, help="new TOTAL quantity, filled part included"
    )
    amend.add_argument(
        "--wait",
        action="store_true",
        help="show the order once the engine has applied (or rejected) the amend",
    )

    get = command("get", summary="show one order")
    get.add_argument("order_id")
    get.add_argument("--user", default="", dest="user_id", help="require this owner")
    get.add_argument("--min-position", default="", help="wait until views reach this position")

    orders = command("orders", summary="list a user's orders, most recent first")
    orders.add_argument("--user", **ACCOUNT_OPTION)
    orders.add_argument("--instrument", default="")
    orders.add_argument(
        "--status", type=_enum_argument(OrderStatus), default=OrderStatus.UNSPECIFIED
    )
    orders.add_argument("--page-size", type=non_negative_int, default=0)
    orders.add_argument("--page-token", default="")
    orders.add_argument("--all", action="store_true", help="follow page tokens to the end")
    orders.add_argument("--min-position", default="")

    book = command("book", summary="show an instrument's aggregated book")
    book.add_argument("instrument")
    book.add_argument("--depth", type=non_negative_int, default=10, help="0: whole book")
    book.add_argument("--min-position", default="")

    trades = command("trades", summary="list an instrument's trades, most recent first")
    trades.add_argument("instrument")
    trades.add_argument("--page-size", type=non_negative_int, default=0)
    trades.add_argument("--page-token", default="")
    trades.add_argument("--min-position", default="")

    command("instruments", summary="list the configured instruments")

    watch = command("watch", summary="follow a live stream (resubscribes when it breaks)")
    _add_watch_options(watch, top=True)
    watch_options = argparse.ArgumentParser(add_help=False)
    _add_watch_options(watch_options, top=False)
    streams = watch.add_subparsers(dest="stream", required=True, metavar="STREAM")

    def stream(name: str, summary: str) -> argparse.ArgumentParser:
        return streams.add_parser(name, help=summary, parents=[connection, watch_options])

    watch_trades = stream("trades", summary="trades of an instrument")
    watch_trades.add_argument("instrument")
    watch_book = stream("book", summary="book snapshot, then level updates")
    watch_book.add_argument("instrument")
    watch_book.add_argument("--depth", type=non_negative_int, default=0)
    watch_orders = stream("orders", summary="changes of a user's orders")
    watch_orders.add_argument("--user", **ACCOUNT_OPTION)
    watch_orders.add_argument("--instrument", default="")

    load = command(
        "load", summary="load generator: throughput and latency percentiles of order entry"
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
    load.add_argument(
        "--wait",
        action="store_true",
        help="each order is answered once the engine has handled it (latency to the outcome)",
    )
    load.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    load.add_argument(
        "--admin-api-key",
        default=os.environ.get(ADMIN_API_KEY_ENVIRONMENT_VARIABLE, ""),
        help="admin key that issues one trade key per simulated user (default: "
        f"${ADMIN_API_KEY_ENVIRONMENT_VARIABLE}, else --api-key)",
    )

    add_account_commands(command)

    keys = command("keys", summary="issue, list and revoke API keys (needs an admin key)")
    key_actions = keys.add_subparsers(dest="key_action", required=True, metavar="ACTION")

    def key_action(name: str, summary: str) -> argparse.ArgumentParser:
        return key_actions.add_parser(name, help=summary, parents=[connection])

    issue = key_action("issue", summary="a new key for an account; prints it once")
    issue.add_argument("--user", required=True, dest="user_id", help="the key's account")
    issue.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        required=True,
        type=_enum_argument(Scope),
        help="read, trade or admin; repeat for several",
    )
    issue.add_argument(
        "--key-only", action="store_true", help="print only the key (for KEY=$(exchange ...))"
    )
    revoke = key_action("revoke", summary="revoke a key on every server")
    revoke.add_argument("key_id")
    listing = key_action("list", summary="the keys of an account (all when no --user)")
    listing.add_argument("--user", default="", dest="user_id", help="only this account's keys")
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
        wait=arguments.wait,
        admin_api_key=arguments.admin_api_key or arguments.api_key,
        tls=tls_files_of(arguments),
    )


# --- commands ------------------------------------------------------------------------------

# Commands that show amounts: they read the instruments first, for their precision.
SHOWS_AMOUNTS = frozenset(
    {"place", "cancel", "cancel-all", "amend", "get", "orders", "book", "trades", "watch"}
)


async def _run_command(arguments: argparse.Namespace, output: Output) -> None:
    command = arguments.command
    if command == "load":
        await _run_load(arguments, output)
        return
    async with ExchangeClient.connect(
        arguments.target,
        timeout=arguments.timeout,
        tls=tls_files_of(arguments),
        api_key=arguments.api_key,
    ) as exchange:
        if command in SHOWS_AMOUNTS:
            output.precision = DisplayPrecision(await exchange.list_instruments())
        if command == "ping":
            await exchange.ping()
            output.show({"ok": True}, "pong")
        elif command == "place":
            await _place(exchange, arguments, output)
        elif command == "cancel":
            await _cancel(exchange, arguments, output)
        elif command == "cancel-all":
            await _cancel_all(exchange, arguments, output)
        elif command == "amend":
            await _amend(exchange, arguments, output)
        elif command == "get":
            order = await exchange.get_order(
                arguments.order_id, user_id=arguments.user_id, min_position=arguments.min_position
            )
            output.show(order, render.order_table)
        elif command == "orders":
            await _list_orders(exchange, arguments, output)
        elif command == "book":
            book = await exchange.get_order_book(
                arguments.instrument, depth=arguments.depth, min_position=arguments.min_position
            )
            output.show(book, render.order_book_table)
        elif command == "trades":
            page = await exchange.list_trades(
                arguments.instrument,
                page_size=arguments.page_size,
                page_token=arguments.page_token,
                min_position=arguments.min_position,
            )
            output.show(page, lambda shown: render.trades_table(shown.trades))
            if page.next_page_token:
                output.note(f"next page: --page-token {printable(page.next_page_token)}")
        elif command == "instruments":
            instruments = await exchange.list_instruments()
            output.show(instruments, render.instruments_table)
        elif command == "watch":
            await watch(exchange, arguments, output)
        elif command == "keys":
            await run_keys_command(exchange, arguments, output)
        elif command in ACCOUNT_COMMANDS:
            await run_account_command(exchange, arguments, output)
        else:  # pragma: no cover - argparse only accepts the commands above
            raise AssertionError(command)


async def _place(exchange: ExchangeClient, arguments: argparse.Namespace, output: Output) -> None:
    """Place; with --wait the service answers once the engine has handled the order."""
    placed = await exchange.place_order(new_order_from_arguments(arguments), wait=arguments.wait)
    position = printable(placed.position)
    if placed.duplicate:
        title = f"already placed with this client order id, at log position {position}"
    else:
        title = f"placed at log position {position}"
    output.show(placed, lambda shown: render.order_table(shown.order, title=title))


def _answer_title(request: str, result: CommandResult) -> str:
    """The line above an order the engine has answered a cancel or amend for."""
    position = printable(result.position)
    if result.rejection_reason:
        return (
            f"{request} rejected by the engine ({printable(result.rejection_reason)}) at log "
            f"position {position}; the order as it stands:"
        )
    return f"{request} answered at log position {position}; the order after it:"


async def _cancel(exchange: ExchangeClient, arguments: argparse.Namespace, output: Output) -> None:
    """Cancel and, unless --no-wait, show the order once the engine has answered: CANCELLED,
    or FILLED/EXPIRED when that came first (the engine then rejects the cancel)."""
    wait = not arguments.no_wait
    result = await exchange.cancel_order(arguments.user_id, arguments.order_id, wait=wait)
    if wait:
        title = _answer_title("cancel", result)
    else:
        title = (
            f"cancel requested at log position {printable(result.position)}; "
            "the order before the cancel:"
        )
    output.show(result, lambda shown: render.order_table(shown.order, title=title))


async def _amend(exchange: ExchangeClient, arguments: argparse.Namespace, output: Output) -> None:
    """Amend; with --wait, show the order once the engine has applied or rejected it."""
    result = await exchange.amend_order(
        arguments.user_id,
        arguments.order_id,
        price=arguments.price,
        quantity=arguments.quantity,
        wait=arguments.wait,
    )
    if arguments.wait:
        title = _answer_title("amend", result)
    else:
        title = (
            f"amend requested at log position {printable(result.position)}; "
            "the order before the amend:"
        )
    output.show(result, lambda shown: render.order_table(shown.order, title=title))


async def _cancel_all(
    exchange: ExchangeClient, arguments: argparse.Namespace, output: Output
) -> None:
    result = await exchange.cancel_all_orders(
        arguments.user_id, instrument=arguments.instrument, wait=not arguments.no_wait
    )
    position = result.position
    if arguments.no_wait:
        output.show(
            {"position": position}, f"cancel-all requested at log position {printable(position)}"
        )
        return
    cancelled = list(result.cancelled_orders)
    plural = "" if len(cancelled) == 1 else "s"
    summary = (
        f"cancel-all answered at log position {printable(position)}: "
        f"{len(cancelled)} order{plural} cancelled"
    )
    output.show(
        {"position": position, "cancelled": len(cancelled), "cancelled_orders": cancelled},
        lambda shown: (
            render.orders_table(shown["cancelled_orders"], title=summary) if cancelled else summary
        ),
    )


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
        output.show(page, lambda shown: render.orders_table(shown.orders))
        page_token = page.next_page_token
        if not page_token:
            return
        if not arguments.all:
            output.note(f"next page: --page-token {printable(page_token)}")
            return


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
    waiting = ", waiting for outcomes" if plan.wait and plan.mode != "ping" else ""
    table = Table(
        title=f"{plan.orders} {unit}, {plan.mode}, {plan.concurrency} clients, rate {rate}"
        + waiting,
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
        hint = render.access_hint(error, key_given=bool(arguments.api_key))
        if arguments.json:
            shown: dict[str, Any] = {
                "error": error.code.name,
                "message": error.message,
                "reason": error.reason,
                "field_violations": list(error.field_violations),
            }
            if hint:
                shown["hint"] = hint
            print(render.json_line(shown), file=sys.stderr)
        else:
            print(f"error: {render.error_text(error)}", file=sys.stderr)
            if hint:
                print(f"hint: {hint}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"error: {printable(str(error))}", file=sys.stderr)
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
