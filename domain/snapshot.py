"""The engine's state as plain JSON-able data, and back.

A snapshot holds each book's instrument, trade counter, last price and book-delta sequence
(absent from snapshots written before there were deltas: read as 0), its resting orders
in priority order and its waiting stops in arrival order, the clock, the arrival counter,
and the final status of the closed order ids the engine remembers. The service stores it in
its log (`MatchingEngine.snapshot` / `restore`), so its shape is versioned by `format`.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from domain.engine_state import EngineState
from domain.events import OrderAccepted
from domain.instruments import Instrument, plain_text
from domain.orders import Order, OrderStatus, OrderType, SelfTradePrevention, Side, TimeInForce

SNAPSHOT_FORMAT = 1

_ORDER_FIELDS = (
    "order_id",
    "user_id",
    "instrument",
    "side",
    "order_type",
    "price",
    "quantity",
    "remaining",
    "filled",
    "time_in_force",
    "post_only",
    "stp",
    "expire_time",
    "max_slippage_bps",
    "stop_price",
    "seq",
    "triggered",
)
_ENUM_FIELDS = ("side", "order_type", "time_in_force", "stp")


def snapshot_of(state: EngineState) -> dict[str, Any]:
    """The whole state as JSON-able data; `state_from_snapshot` reads it back."""
    books = []
    for book in state.books_by_symbol.values():
        instrument = book.instrument
        books.append(
            {
                "symbol": instrument.symbol,
                "tick_size": plain_text(instrument.tick_size),
                "lot_size": plain_text(instrument.lot_size),
                "min_quantity": None
                if instrument.min_quantity is None
                else plain_text(instrument.min_quantity),
                "trade_count": book.trade_count,
                "last_price": book.last_price,
                "delta_sequence": book.delta_sequence,
                "bids": [_order_to_dict(o) for o in book.bids.orders_in_priority()],
                "asks": [_order_to_dict(o) for o in book.asks.orders_in_priority()],
                "stops": [_order_to_dict(o) for o in book.stops.values()],
            }
        )
    return {
        "format": SNAPSHOT_FORMAT,
        "now": state.now,
        "seq": state.arrivals,
        "books": books,
        "closed_order_memory": state.closed_order_memory,
        "closed": {
            order_id: status.value for order_id, status in state.closed_status_by_id.items()
        },
    }


def state_from_snapshot(snapshot: Mapping[str, Any]) -> EngineState:
    """The state a snapshot describes; ValueError for a format this code does not read."""
    if snapshot.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"unsupported snapshot format {snapshot.get('format')!r}")
    state = EngineState(snapshot.get("closed_order_memory"))
    state.now = int(snapshot["now"])
    state.arrivals = int(snapshot["seq"])
    open_orders = state.open_orders_by_id
    for data in snapshot["books"]:
        min_quantity = data["min_quantity"]
        book = state.open_book(
            Instrument(
                data["symbol"],
                Decimal(data["tick_size"]),
                Decimal(data["lot_size"]),
                None if min_quantity is None else Decimal(min_quantity),
            )
        )
        book.trade_count = int(data["trade_count"])
        book.last_price = data["last_price"]
        book.delta_sequence = int(data.get("delta_sequence", 0))
        for side_name, side in (("bids", book.bids), ("asks", book.asks)):
            for order_data in data[side_name]:
                order = _order_from_dict(order_data)
                side.add_live(order)
                open_orders[order.order_id] = order
        for order_data in data["stops"]:
            order = _order_from_dict(order_data)
            book.add_stop(order)
            open_orders[order.order_id] = order
    state.expiry_queue = [
        (order.expire_time, order.seq, order.order_id)
        for order in open_orders.values()
        if order.expire_time is not None
    ]
    heapq.heapify(state.expiry_queue)
    state.closed_status_by_id = {
        order_id: OrderStatus(status) for order_id, status in snapshot["closed"].items()
    }
    return state


def _order_to_dict(order: Order) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(order, name) for name in _ORDER_FIELDS}
    for name in _ENUM_FIELDS:
        data[name] = data[name].value
    return data


def _order_from_dict(data: Mapping[str, Any]) -> Order:
    side = Side(data["side"])
    # The order's fixed terms, as accepted (the time of acceptance is not kept).
    terms = OrderAccepted(
        data["order_id"],
        data["user_id"],
        data["instrument"],
        side,
        OrderType(data["order_type"]),
        data["price"],
        data["quantity"],
        TimeInForce(data["time_in_force"]),
        data["post_only"],
        SelfTradePrevention(data["stp"]),
        data["expire_time"],
        data["max_slippage_bps"],
        data["stop_price"],
        0,
    )
    return Order(
        terms,
        data["order_id"],
        data["user_id"],
        data["instrument"],
        side is Side.BUY,
        data["price"],
        data["quantity"],
        data["remaining"],
        data["seq"],
        data["triggered"],
        False,
    )
