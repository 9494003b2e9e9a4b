"""The engine's state as plain JSON-able data, and back.

A snapshot holds each book's instrument (with its assets, fees and trading status), trade
counter, last price and book-delta sequence (absent from snapshots written before there
were deltas: read as 0), its resting orders in priority order and its waiting stops in
arrival order; the clock, the arrival counter, the final status of the closed order ids the
engine remembers; the assets and, with accounts on, every balance and the transfer ids seen
(what an order holds is not stored: it follows from the order). The service stores it in
its log (`MatchingEngine.snapshot` / `restore`), so its shape is versioned by `format`.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from domain.accounts import Accounts, Balance, InstrumentMoney
from domain.engine_state import EngineState
from domain.events import OrderAccepted
from domain.instruments import Instrument, InstrumentStatus, plain_text
from domain.orders import Order, OrderStatus, OrderType, SelfTradePrevention, Side, TimeInForce

# 2: instruments' assets and fees, statuses, assets, balances and transfer ids (format 1,
# from before accounts, is still read: it has none of them).
SNAPSHOT_FORMAT = 2
_READABLE_FORMATS = (1, 2)

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
                "base": instrument.base,
                "quote": instrument.quote,
                "maker_fee_bps": instrument.maker_fee_bps,
                "taker_fee_bps": instrument.taker_fee_bps,
                "status": state.not_trading.get(instrument.symbol, InstrumentStatus.TRADING).value,
                "trade_count": book.trade_count,
                "last_price": book.last_price,
                "delta_sequence": book.delta_sequence,
                "bids": [_order_to_dict(o) for o in book.bids.orders_in_priority()],
                "asks": [_order_to_dict(o) for o in book.asks.orders_in_priority()],
                "stops": [_order_to_dict(o) for o in book.stops.values()],
            }
        )
    accounts = state.accounts
    return {
        "format": SNAPSHOT_FORMAT,
        "now": state.now,
        "seq": state.arrivals,
        "books": books,
        "assets": dict(state.asset_precisions),
        "accounts": None
        if accounts is None
        else {
            # Sorted, so that equal states give equal snapshots.
            # Amounts as decimal text: a balance may pass a 64-bit integer, which JSON
            # encoders refuse (or round).
            "balances": sorted(
                [user_id, asset, str(balance.available), str(balance.held)]
                for (user_id, asset), balance in accounts.balances.items()
            ),
            "transfer_ids": sorted(accounts.transfer_ids),
        },
        "closed_order_memory": state.closed_order_memory,
        "closed": {
            order_id: status.value for order_id, status in state.closed_status_by_id.items()
        },
    }


def state_from_snapshot(snapshot: Mapping[str, Any]) -> EngineState:
    """The state a snapshot describes; ValueError for a format this code does not read."""
    if snapshot.get("format") not in _READABLE_FORMATS:
        raise ValueError(f"unsupported snapshot format {snapshot.get('format')!r}")
    state = EngineState(snapshot.get("closed_order_memory"))
    state.now = int(snapshot["now"])
    state.arrivals = int(snapshot["seq"])
    state.asset_precisions.update(snapshot.get("assets") or {})
    accounts_data = snapshot.get("accounts")
    if accounts_data is not None:
        accounts = state.accounts = Accounts(state.asset_precisions)
        for user_id, asset, available, held in accounts_data["balances"]:
            accounts.balances[(user_id, asset)] = Balance(int(available), int(held))
        accounts.transfer_ids.update(accounts_data["transfer_ids"])
    open_orders = state.open_orders_by_id
    for data in snapshot["books"]:
        min_quantity = data["min_quantity"]
        instrument = Instrument(
            data["symbol"],
            Decimal(data["tick_size"]),
            Decimal(data["lot_size"]),
            None if min_quantity is None else Decimal(min_quantity),
            data.get("base"),
            data.get("quote"),
            data.get("maker_fee_bps", 0),
            data.get("taker_fee_bps", 0),
        )
        book = state.open_book(instrument)
        status = InstrumentStatus(data.get("status", "TRADING"))
        if status is not InstrumentStatus.TRADING:
            state.not_trading[instrument.symbol] = status
        if state.accounts is not None:
            state.accounts.money_by_symbol[instrument.symbol] = InstrumentMoney(
                instrument, state.asset_precisions
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
    if state.accounts is not None:
        accounts = state.accounts
        # Re-link each holding order to the balance its hold sits in.
        for order in open_orders.values():
            if order.price is not None:
                money = accounts.money_by_symbol[order.instrument]
                order.funds = accounts.balance(order.user_id, money.hold_asset(order.is_buy))
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
