"""How the CLI shows the client's values: JSON-ready dicts and rich tables.

JSON output (`exchange --json ...`) uses the API's field names, decimals as strings exactly
as the service sent them and times as RFC 3339 UTC with 'Z', one JSON object per line, so
scripts can consume it. Human output uses rich tables.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from rich.table import Table

from clients.models import (
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
    return json.dumps(to_json_value(value), separators=(",", ":"))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def order_table(order: Order, *, title: str | None = None) -> Table:
    """One order, field per row."""
    table = Table(title=title, show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for field in dataclasses.fields(order):
        value = getattr(order, field.name)
        if value in (None, "", False) and field.name not in ("filled_quantity", "post_only"):
            continue
        table.add_row(field.name, _text(value))
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


def orders_table(orders: tuple[Order, ...] | list[Order]) -> Table:
    table = Table(*ORDER_COLUMNS)
    for order in orders:
        table.add_row(*(_text(getattr(order, column)) for column in ORDER_COLUMNS))
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
        table.add_row(*(_text(getattr(trade, column)) for column in TRADE_COLUMNS))
    return table


def trade_line(event: TradeEvent) -> str:
    trade = event.trade
    return (
        f"{_text(trade.executed_at)} {trade.instrument} {trade.trade_id} "
        f"{_text(trade.taker_side)} {_text(trade.quantity)} @ {_text(trade.price)} "
        f"(maker {trade.maker_order_id}, taker {trade.taker_order_id})"
    )


def book_table(
    instrument: str,
    bids: tuple[PriceLevel, ...],
    asks: tuple[PriceLevel, ...],
    *,
    caption: str | None = None,
) -> Table:
    """Bids and asks side by side, best prices on the first row."""
    table = Table(title=instrument, caption=caption)
    for header in ("orders", "bid qty", "bid", "ask", "ask qty", "orders"):
        table.add_column(header, justify="right")
    for row in range(max(len(bids), len(asks))):
        bid = bids[row] if row < len(bids) else None
        ask = asks[row] if row < len(asks) else None
        table.add_row(
            str(bid.order_count) if bid else "",
            _text(bid.quantity) if bid else "",
            f"[green]{_text(bid.price)}[/green]" if bid else "",
            f"[red]{_text(ask.price)}[/red]" if ask else "",
            _text(ask.quantity) if ask else "",
            str(ask.order_count) if ask else "",
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
            f"#{message.sequence} snapshot {message.instrument}: "
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
        f"{update.event_type} {order.order_id} {order.instrument} {_text(order.side)} "
        f"{_text(order.status)} filled {_text(order.filled_quantity)}/{_text(order.quantity)}"
        f"{fill}" + (f" reason {order.reason}" if order.reason else "")
    )


def instruments_table(instruments: list[Instrument]) -> Table:
    table = Table("symbol", "tick_size", "lot_size", "min_quantity")
    for instrument in instruments:
        table.add_row(
            instrument.symbol,
            _text(instrument.tick_size),
            _text(instrument.lot_size),
            _text(instrument.min_quantity),
        )
    return table
