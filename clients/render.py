"""How the CLI shows the client's values: JSON-ready dicts, lines and rich tables.

JSON output (`exchange --json ...`) uses the API's field names, decimals as strings (at the
precision `clients.precision` gives them) and times as RFC 3339 UTC with 'Z', one JSON
object per line, so scripts can consume it. Human output uses rich tables and lines.

Text that comes from the service (ids, symbols, reasons, messages) can hold anything a
client managed to write. Every human-readable path shows it through `printable`, which
escapes control, format and other invisible characters repr-style (`\\x1b`, `\\u202e`) and
doubles backslashes, so an id cannot move the cursor, recolour, clear or reorder the
operator's terminal, and no two ids look alike. JSON output escapes them the JSON way.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import grpc
from rich.table import Table
from rich.text import Text

from clients.errors import ExchangeError
from clients.models import (
    ApiKey,
    BookSnapshot,
    BookUpdate,
    Instrument,
    Order,
    OrderBook,
    OrderUpdate,
    PriceLevel,
    Trade,
    TradeEvent,
)


def to_json_value(value: Any) -> Any:
    """A JSON-serialisable form of a client value (dataclasses become dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: to_json_value(getattr(value, field.name))
            for field in dataclasses.fields(value)
        }
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json_value(item) for key, item in value.items()}
    return value


def json_line(value: Any) -> str:
    """One JSON object; ASCII only (json escapes controls and non-ASCII as \\uXXXX), and
    DEL, the one ASCII control json leaves raw, escaped too."""
    return json.dumps(to_json_value(value), separators=(",", ":")).replace("\x7f", "\\u007f")


def _escaped(character: str) -> str:
    return "\\\\" if character == "\\" else repr(character)[1:-1]


def printable(text: str) -> str:
    """`text` safe for a terminal: every character Python does not call printable (controls
    such as ESC and BEL, format characters such as RTL overrides, separators other than
    the space, unassigned code points) escaped as repr does (`\\x1b`), and `\\` doubled so
    an escape in the output always stands for one character."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(
        character if character.isprintable() and character != "\\" else _escaped(character)
        for character in text
    )


def error_text(error: ExchangeError) -> str:
    """An error as the CLI prints it: status, message, reason and one line per field
    violation, each piece through `printable` (the service may quote what a client sent)."""
    text = f"{error.code.name}: {printable(error.message)}"
    if error.reason:
        text += f" ({printable(error.reason)})"
    for violation in error.field_violations:
        reason = f" [{printable(violation.reason)}]" if violation.reason else ""
        text += f"\n  {printable(violation.field)}: {printable(violation.description)}{reason}"
    return text


def access_hint(error: ExchangeError, *, key_given: bool) -> str:
    """What to do about a refused key ("" for other errors): the status alone does not say
    whether the key was missing, unknown or short of a scope."""
    if error.code == grpc.StatusCode.UNAUTHENTICATED:
        if not key_given:
            return (
                "no API key given: pass --api-key or set EXCHANGE_API_KEY (`make run` "
                "writes the admin key to .data/admin-api-key; an admin issues keys with "
                "`exchange keys issue`)"
            )
        return (
            "the service does not accept this API key: it is unknown, revoked or mistyped "
            "(an admin can issue a new one with `exchange keys issue`)"
        )
    if error.code == grpc.StatusCode.PERMISSION_DENIED:
        return (
            "this API key may not do that: it lacks the scope (see `exchange keys list`), "
            "or --user names an account other than the key's (leave --user out)"
        )
    return ""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, Enum):
        return printable(str(value.value))
    return printable(str(value))


def _cell(value: Any, style: str = "") -> Text:
    """A table cell taken literally (no rich markup or emoji codes in ids)."""
    return Text(_text(value), style=style)


def order_table(order: Order, *, title: str | None = None) -> Table:
    """One order, field per row. `title` is shown as given: escape what it quotes."""
    table = Table(title=_title(title), show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for field in dataclasses.fields(order):
        value = getattr(order, field.name)
        if value in (None, "", False) and field.name not in ("filled_quantity", "post_only"):
            continue
        table.add_row(field.name, _cell(value))
    return table


ORDER_COLUMNS = (
    "order_id",
    "instrument",
    "side",
    "type",
    "price",
    "quantity",
    "filled_quantity",
    "average_price",
    "status",
    "reason",
    "updated_at",
)


def orders_table(orders: tuple[Order, ...] | list[Order], *, title: str | None = None) -> Table:
    table = Table(*ORDER_COLUMNS, title=_title(title))
    for order in orders:
        table.add_row(*(_cell(getattr(order, column)) for column in ORDER_COLUMNS))
    return table


TRADE_COLUMNS = (
    "trade_id",
    "instrument",
    "price",
    "quantity",
    "taker_side",
    "maker_order_id",
    "taker_order_id",
    "executed_at",
)


def trades_table(trades: tuple[Trade, ...] | list[Trade]) -> Table:
    table = Table(*TRADE_COLUMNS)
    for trade in trades:
        table.add_row(*(_cell(getattr(trade, column)) for column in TRADE_COLUMNS))
    return table


def trade_line(event: TradeEvent) -> str:
    trade = event.trade
    return (
        f"{_text(trade.executed_at)} {_text(trade.instrument)} {_text(trade.trade_id)} "
        f"{_text(trade.taker_side)} {_text(trade.quantity)} @ {_text(trade.price)} "
        f"(maker {_text(trade.maker_order_id)}, taker {_text(trade.taker_order_id)})"
    )


def book_table(
    instrument: str,
    bids: tuple[PriceLevel, ...],
    asks: tuple[PriceLevel, ...],
    *,
    caption: str | None = None,
) -> Table:
    """Bids and asks side by side, best prices on the first row."""
    table = Table(title=_title(_text(instrument)), caption=_title(caption))
    for header in ("orders", "bid qty", "bid", "ask", "ask qty", "orders"):
        table.add_column(header, justify="right")
    for row in range(max(len(bids), len(asks))):
        bid = bids[row] if row < len(bids) else None
        ask = asks[row] if row < len(asks) else None
        table.add_row(
            _cell(bid.order_count if bid else None),
            _cell(bid.quantity if bid else None),
            _cell(bid.price if bid else None, "green"),
            _cell(ask.price if ask else None, "red"),
            _cell(ask.quantity if ask else None),
            _cell(ask.order_count if ask else None),
        )
    return table


def order_book_table(book: OrderBook) -> Table:
    last = f"last {_text(book.last_price)}, " if book.last_price is not None else ""
    return book_table(
        book.instrument, book.bids, book.asks, caption=f"{last}sequence {book.sequence}"
    )


def book_message_line(message: BookSnapshot | BookUpdate) -> str:
    if isinstance(message, BookSnapshot):
        return (
            f"#{message.sequence} snapshot {_text(message.instrument)}: "
            f"{len(message.bids)} bid levels, {len(message.asks)} ask levels"
        )
    changes = ", ".join(
        f"{_text(change.side)} {_text(change.price)} -> {_text(change.quantity)}"
        f" ({change.order_count})"
        for change in message.changes
    )
    return f"#{message.sequence} {changes}"


def order_update_line(update: OrderUpdate) -> str:
    order = update.order
    fill = ""
    if update.trade is not None:
        fill = f" fill {_text(update.trade.quantity)} @ {_text(update.trade.price)}"
    return (
        f"{_text(update.event_type)} {_text(order.order_id)} {_text(order.instrument)} "
        f"{_text(order.side)} {_text(order.status)} "
        f"filled {_text(order.filled_quantity)}/{_text(order.quantity)}"
        f"{fill}" + (f" reason {_text(order.reason)}" if order.reason else "")
    )


def instruments_table(instruments: list[Instrument]) -> Table:
    table = Table("symbol", "tick_size", "lot_size", "min_quantity")
    for instrument in instruments:
        table.add_row(
            _cell(instrument.symbol),
            _cell(instrument.tick_size),
            _cell(instrument.lot_size),
            _cell(instrument.min_quantity),
        )
    return table


def issued_api_key_table(issued: dict[str, Any]) -> Table:
    """An issued key, field per row (the one time its whole text is shown)."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("key_id", _cell(issued["key_id"]))
    table.add_row("user_id", _cell(issued["user_id"]))
    table.add_row("scopes", _cell(",".join(scope.value for scope in issued["scopes"])))
    table.add_row("api_key", _cell(issued["api_key"]))
    return table


API_KEY_COLUMNS = ("key_id", "user_id", "scopes", "created_at", "last_used_at", "revoked")


def api_keys_table(keys: list[ApiKey]) -> Table:
    table = Table(*API_KEY_COLUMNS)
    for key in keys:
        table.add_row(
            _cell(key.key_id),
            _cell(key.user_id),
            _cell(",".join(scope.value for scope in key.scopes)),
            _cell(key.created_at),
            _cell(key.last_used_at),
            _cell("yes" if key.revoked else "no"),
        )
    return table


def _title(text: str | None) -> Text | None:
    """A title or caption taken literally (callers escape what they quote)."""
    return None if text is None else Text(text)
