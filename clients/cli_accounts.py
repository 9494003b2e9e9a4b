"""`exchange deposit|withdraw|balances|ledger` and `exchange admin halt|resume|cancel-only`.

`deposit` and the `admin` actions need an admin key; `withdraw` takes from the key's own
account (with `--user` and an admin key, from any account); `balances` and `ledger` read
the key's account (an admin's: any `--user`). Transfers answer once the engine decided
(COMPLETED, or REJECTED with its reason); a transfer id makes a retry safe.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from rich.table import Table
from rich.text import Text

from clients.accounts import Balance, LedgerEntry, Transfer
from clients.client import ExchangeClient
from clients.output import Output
from clients.render import printable

ADMIN_STATUS_OF_ACTION = {"halt": "HALTED", "resume": "TRADING", "cancel-only": "CANCEL_ONLY"}


def add_account_commands(command: Any) -> None:
    """The commands' parsers (`command(name, summary)` makes one with the connection
    options)."""
    deposit = command("deposit", summary="credit an account (admin key)")
    deposit.add_argument("--user", required=True, dest="user_id")
    _transfer_options(deposit)
    withdraw = command("withdraw", summary="withdraw available funds")
    withdraw.add_argument("--user", default="", dest="user_id", help="another account (admin key)")
    _transfer_options(withdraw)
    balances = command("balances", summary="an account's balances (available, held)")
    balances.add_argument("--user", default="", dest="user_id")
    balances.add_argument("--min-position", default="")
    ledger = command("ledger", summary="an account's balance changes, most recent first")
    ledger.add_argument("--user", default="", dest="user_id")
    ledger.add_argument("--asset", default="")
    ledger.add_argument("--page-size", type=int, default=0)
    ledger.add_argument("--page-token", default="")
    admin = command("admin", summary="venue controls (admin key)")
    actions = admin.add_subparsers(dest="admin_action", required=True, metavar="ACTION")
    for action, status in ADMIN_STATUS_OF_ACTION.items():
        parser = actions.add_parser(action, help=f"set an instrument {status}")
        parser.add_argument("instrument")


def _transfer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--asset", required=True)
    parser.add_argument("--amount", required=True, help="decimal, e.g. 1000.50")
    parser.add_argument(
        "--transfer-id", default="", help="idempotency key (default: a new one each time)"
    )


ACCOUNT_COMMANDS = frozenset({"deposit", "withdraw", "balances", "ledger", "admin"})


async def run_account_command(
    exchange: ExchangeClient, arguments: argparse.Namespace, output: Output
) -> None:
    command = arguments.command
    if command == "deposit":
        transfer = await exchange.deposit(
            arguments.user_id, arguments.asset, arguments.amount, _transfer_id(arguments)
        )
        output.show(transfer, transfer_line)
    elif command == "withdraw":
        transfer = await exchange.withdraw(
            arguments.asset,
            arguments.amount,
            _transfer_id(arguments),
            user_id=arguments.user_id,
            as_admin=bool(arguments.user_id),
        )
        output.show(transfer, transfer_line)
    elif command == "balances":
        balances = await exchange.balances(arguments.user_id, min_position=arguments.min_position)
        if output.as_json:
            for balance in balances:
                output.show(balance)
        else:
            output.show(balances, balances_table)
    elif command == "ledger":
        page = await exchange.ledger(
            arguments.user_id,
            asset=arguments.asset,
            page_size=arguments.page_size,
            page_token=arguments.page_token,
        )
        output.show(page, lambda shown: ledger_table(shown.entries))
        if page.next_page_token:
            output.note(f"next page: --page-token {printable(page.next_page_token)}")
    elif command == "admin":
        status = ADMIN_STATUS_OF_ACTION[arguments.admin_action]
        result = await exchange.set_instrument_status(arguments.instrument, status)
        output.show(result, f"{printable(result.instrument)} is {result.status}")
    else:  # pragma: no cover - argparse only accepts the commands above
        raise AssertionError(command)


def _transfer_id(arguments: argparse.Namespace) -> str:
    return str(arguments.transfer_id or uuid.uuid4())


def transfer_line(transfer: Transfer) -> Text:
    reason = f" ({transfer.reason})" if transfer.reason else ""
    again = ", a retry of an earlier request" if transfer.duplicate else ""
    return Text(
        f"{transfer.status}{reason}: {transfer.amount} {transfer.asset} for "
        f"{transfer.user_id}, transfer {transfer.transfer_id}{again}"
    )


def balances_table(balances: list[Balance]) -> Table:
    table = Table("user_id", "asset", "available", "held")
    for balance in balances:
        table.add_row(
            Text(balance.user_id),
            Text(balance.asset),
            Text(format(balance.available, "f")),
            Text(format(balance.held, "f")),
        )
    return table


def ledger_table(entries: tuple[LedgerEntry, ...]) -> Table:
    table = Table("entry_id", "asset", "cause", "available", "held", "reference", "at")
    for entry in entries:
        table.add_row(
            Text(str(entry.entry_id)),
            Text(entry.asset),
            Text(entry.cause),
            Text(format(entry.available_change, "f")),
            Text(format(entry.held_change, "f")),
            Text(entry.reference),
            Text("" if entry.at is None else entry.at.isoformat()),
        )
    return table
