"""Queries on the PostgreSQL views: one order (with its fills), a user's orders, trades.

Lists are most recent first with keyset pagination: the page token is the opaque key of
the last row returned, so a page costs one index range scan however deep it is, and rows
arriving meanwhile never shift later pages.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import asyncpg

from domain.input_rules import shown
from projections.order_reducer import average
from projections.views import FillView, OrderView, TradeView
from server.eventstore.port import LogPosition

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

_ORDER_FIELDS = (
    "order_seq, order_id, client_order_id, user_id, instrument, side, type, price, quantity,"
    " filled_quantity, filled_notional, status, reason, time_in_force, stop_price, post_only,"
    " expire_time, created_at, updated_at"
)
_TRADE_FIELDS = (
    "trade_seq, trade_id, instrument, price, quantity, maker_order_id, taker_order_id,"
    " taker_side, executed_at, maker_user_id, taker_user_id, position, buyer_fee, seller_fee,"
    " fee_asset"
)


class InvalidPageToken(ValueError):
    """A page token this reader did not make (reason code `INVALID_PAGE_TOKEN`)."""

    reason = "INVALID_PAGE_TOKEN"


def page_size_of(requested: int | None) -> int:
    """0 or None: the default; otherwise capped at MAX_PAGE_SIZE."""
    if not requested or requested <= 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


MAX_PAGE_TOKEN_CHARS = 64
MAX_PAGE_KEY = 2**63 - 1
_PAGE_KEY = re.compile(r"[0-9]{1,19}")


def encode_page_token(kind: str, key: int) -> str:
    """An opaque page token of `kind` for the keyset key `key` (other readers' pages too)."""
    return _encode_token(kind, key)


def decode_page_token(kind: str, token: str | None) -> int | None:
    """The key of a token made by `encode_page_token(kind, ...)`; `InvalidPageToken` else."""
    return _decode_token(kind, token)


def _encode_token(kind: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def _decode_token(kind: str, token: str | None) -> int | None:
    if not token:
        return None
    quoted = shown(token)
    if len(token) > MAX_PAGE_TOKEN_CHARS:
        raise InvalidPageToken(f"page token {quoted} is too long")
    try:
        padded = token + "=" * (-len(token) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError) as error:
        raise InvalidPageToken(f"malformed page token {quoted}") from error
    prefix, _, key = text.partition(":")
    # The key is a bigint of the views: ASCII digits within 64 bits.
    if prefix != kind or _PAGE_KEY.fullmatch(key) is None or int(key) > MAX_PAGE_KEY:
        raise InvalidPageToken(f"page token {quoted} is not a {kind} token")
    return int(key)


def _order_of(row: asyncpg.Record, fills: tuple[FillView, ...] = ()) -> OrderView:
    filled = row["filled_quantity"]
    return OrderView(
        order_id=row["order_id"],
        client_order_id=row["client_order_id"],
        user_id=row["user_id"],
        instrument=row["instrument"],
        side=row["side"],
        type=row["type"],
        price=row["price"],
        quantity=row["quantity"],
        filled_quantity=filled,
        average_price=average(row["filled_notional"], filled) if filled else None,
        status=row["status"],
        reason=row["reason"],
        time_in_force=row["time_in_force"],
        stop_price=row["stop_price"],
        post_only=row["post_only"],
        expire_time=row["expire_time"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        fills=fills,
    )


def _trade_of(row: asyncpg.Record) -> TradeView:
    return TradeView(
        trade_id=row["trade_id"],
        instrument=row["instrument"],
        price=row["price"],
        quantity=row["quantity"],
        maker_order_id=row["maker_order_id"],
        taker_order_id=row["taker_order_id"],
        taker_side=row["taker_side"],
        executed_at=row["executed_at"],
        maker_user_id=row["maker_user_id"],
        taker_user_id=row["taker_user_id"],
        position=row["position"],
        buyer_fee=row["buyer_fee"],
        seller_fee=row["seller_fee"],
        fee_asset=row["fee_asset"],
    )


class OrderViews:
    """Reads orders, fills and trades; `pool` is an asyncpg pool on the views' database."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get_order(self, order_id: str, with_fills: bool = True) -> OrderView | None:
        """The order, with its fills in execution order; None when unknown."""
        async with self._pool.acquire() as connection:
            row = await connection.fetchrow(
                f"SELECT {_ORDER_FIELDS} FROM view_orders WHERE order_id = $1", order_id
            )
            if row is None:
                return None
            fills: tuple[FillView, ...] = ()
            if with_fills:
                fill_rows = await connection.fetch(
                    "SELECT trade_id, price, quantity, liquidity, executed_at"
                    " FROM view_order_fills WHERE order_id = $1 ORDER BY fill_seq",
                    order_id,
                )
                fills = tuple(
                    FillView(
                        r["trade_id"], r["price"], r["quantity"], r["liquidity"], r["executed_at"]
                    )
                    for r in fill_rows
                )
        return _order_of(row, fills)

    async def find_by_client_order_id(self, user_id: str, client_order_id: str) -> OrderView | None:
        """The user's order placed with `client_order_id` (the first one), if the view has it."""
        row = await self._pool.fetchrow(
            f"SELECT {_ORDER_FIELDS} FROM view_orders"
            " WHERE user_id = $1 AND client_order_id = $2 ORDER BY order_seq LIMIT 1",
            user_id,
            client_order_id,
        )
        return None if row is None else _order_of(row)

    async def list_orders(
        self,
        user_id: str,
        instrument: str | None = None,
        status: str | None = None,
        page_size: int | None = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
    ) -> tuple[list[OrderView], str]:
        """One page of `user_id`'s orders, most recent first, and the next page's token
        ("" on the last page). `status` is a domain status name (e.g. "OPEN")."""
        size = page_size_of(page_size)
        after = _decode_token("order", page_token)
        conditions = ["user_id = $1"]
        arguments: list[Any] = [user_id]
        if instrument:
            arguments.append(instrument)
            conditions.append(f"instrument = ${len(arguments)}")
        if status:
            arguments.append(status)
            conditions.append(f"status = ${len(arguments)}")
        if after is not None:
            arguments.append(after)
            conditions.append(f"order_seq < ${len(arguments)}")
        arguments.append(size + 1)
        rows = await self._pool.fetch(
            f"SELECT {_ORDER_FIELDS} FROM view_orders WHERE {' AND '.join(conditions)}"
            f" ORDER BY order_seq DESC LIMIT ${len(arguments)}",
            *arguments,
        )
        page = rows[:size]
        next_token = _encode_token("order", page[-1]["order_seq"]) if len(rows) > size else ""
        return [_order_of(row) for row in page], next_token

    async def latest_trades_after(
        self, instrument: str, after: LogPosition, limit: int
    ) -> list[TradeView] | None:
        """`instrument`'s trades after the log position `after`, oldest first; None when
        there are more than `limit` of them (the caller pages through list_trades)."""
        rows = await self._pool.fetch(
            f"SELECT {_TRADE_FIELDS} FROM view_trades WHERE instrument = $1"
            " ORDER BY trade_seq DESC LIMIT $2",
            instrument,
            limit + 1,
        )
        newer = [row for row in rows if LogPosition.parse(row["position"]) > after]
        if len(newer) > limit:
            return None
        return [_trade_of(row) for row in reversed(newer)]

    async def list_trades(
        self,
        instrument: str,
        page_size: int | None = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
    ) -> tuple[list[TradeView], str]:
        """One page of `instrument`'s trades, most recent first, and the next page's token."""
        size = page_size_of(page_size)
        after = _decode_token("trade", page_token)
        if after is None:
            rows = await self._pool.fetch(
                f"SELECT {_TRADE_FIELDS} FROM view_trades WHERE instrument = $1"
                " ORDER BY trade_seq DESC LIMIT $2",
                instrument,
                size + 1,
            )
        else:
            rows = await self._pool.fetch(
                f"SELECT {_TRADE_FIELDS} FROM view_trades WHERE instrument = $1"
                " AND trade_seq < $2 ORDER BY trade_seq DESC LIMIT $3",
                instrument,
                after,
                size + 1,
            )
        page = rows[:size]
        next_token = _encode_token("trade", page[-1]["trade_seq"]) if len(rows) > size else ""
        return [_trade_of(row) for row in page], next_token
