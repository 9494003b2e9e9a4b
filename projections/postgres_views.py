"""The PostgreSQL views builder: orders (with fills and status) and trades, via asyncpg.

Each batch is one transaction: load the orders the batch touches, reduce the events over
them (projections.order_reducer, pure), write the new and changed rows, the fills and the
trades, and upsert this builder's checkpoint in `projection_checkpoints`. A crash anywhere
leaves either the whole batch with its checkpoint or neither, so a restart applies nothing
twice (which is also why the commit can be asynchronous: a batch lost to a database crash
is lost with its checkpoint and simply applied again). After the commit the order updates
go to the live feeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg

from projections import log_events as ev
from projections.builder import ProjectionBuilder
from projections.live import LiveFeeds
from projections.order_reducer import OrdersReducer, OrderState, ReducedBatch
from projections.postgres_schema import CHECKPOINTS_TABLE, drop_views, migrate
from projections.views import OrderUpdate
from server import streams
from server.eventstore.port import LogPosition, RecordedEvent
from server.observability import metrics

__all__ = ["PostgresViewBuilder", "drop_views", "load_checkpoint", "migrate"]

BUILDER_NAME = "postgres-views"

_ORDER_COLUMNS = (
    "order_id",
    "client_order_id",
    "user_id",
    "instrument",
    "side",
    "type",
    "price",
    "quantity",
    "filled_quantity",
    "filled_notional",
    "stage",
    "final_status",
    "status",
    "reason",
    "time_in_force",
    "stop_price",
    "post_only",
    "expire_time",
    "created_at",
    "updated_at",
)
_INSERT_ORDER = (
    f"INSERT INTO view_orders ({', '.join(_ORDER_COLUMNS)}, order_seq) VALUES "
    f"({', '.join(f'${index}' for index in range(1, len(_ORDER_COLUMNS) + 2))})"
)
_UPDATE_ORDER = (
    "UPDATE view_orders SET "
    + ", ".join(f"{column} = ${index}" for index, column in enumerate(_ORDER_COLUMNS[1:], start=2))
    + " WHERE order_id = $1"
)
_SELECT_ORDERS = f"SELECT {', '.join(_ORDER_COLUMNS)} FROM view_orders WHERE order_id = ANY($1)"
_INSERT_FILL = (
    "INSERT INTO view_order_fills (order_id, trade_id, price, quantity, liquidity, executed_at,"
    " fill_seq) VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
_INSERT_TRADE = (
    "INSERT INTO view_trades (instrument, trade_id, price, quantity, maker_order_id,"
    " taker_order_id, taker_side, maker_user_id, taker_user_id, executed_at, position,"
    " trade_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)
_LAST_SEQUENCES = (
    "SELECT (SELECT coalesce(max(order_seq), 0) FROM view_orders),"
    " (SELECT coalesce(max(fill_seq), 0) FROM view_order_fills),"
    " (SELECT coalesce(max(trade_seq), 0) FROM view_trades)"
)
_SAVE_CHECKPOINT = (
    f"INSERT INTO {CHECKPOINTS_TABLE} (name, position, updated_at) VALUES ($1, $2, now())"
    " ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()"
)


async def load_checkpoint(pool: asyncpg.Pool, name: str) -> LogPosition | None:
    token = await pool.fetchval(f"SELECT position FROM {CHECKPOINTS_TABLE} WHERE name = $1", name)
    return None if token is None else LogPosition.parse(token)


def _order_ids_of(events: Sequence[RecordedEvent]) -> list[str]:
    """Every order a batch may touch: its order streams and both sides of its trades."""
    order_ids: set[str] = set()
    for event in events:
        if event.type == ev.TRADE_EXECUTED:
            order_ids.add(str(event.data["maker_order_id"]))
            order_ids.add(str(event.data["taker_order_id"]))
            continue
        order_id = streams.order_id_of_stream(event.stream) or event.data.get("order_id")
        if order_id:
            order_ids.add(str(order_id))
    return sorted(order_ids)


def _state_from_row(row: asyncpg.Record) -> OrderState:
    return OrderState(
        order_id=row["order_id"],
        client_order_id=row["client_order_id"],
        user_id=row["user_id"],
        instrument=row["instrument"],
        side=row["side"],
        type=row["type"],
        price=row["price"],
        quantity=row["quantity"],
        filled_quantity=row["filled_quantity"],
        filled_notional=row["filled_notional"],
        stage=row["stage"],
        final_status=row["final_status"],
        reason=row["reason"],
        time_in_force=row["time_in_force"],
        stop_price=row["stop_price"],
        post_only=row["post_only"],
        expire_time=row["expire_time"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _row_of(state: OrderState) -> tuple[Any, ...]:
    created_at = state.created_at or state.updated_at
    return (
        state.order_id,
        state.client_order_id,
        state.user_id,
        state.instrument,
        state.side,
        state.type,
        state.price,
        state.quantity,
        state.filled_quantity,
        state.filled_notional,
        state.stage,
        state.final_status,
        state.status,
        state.reason,
        state.time_in_force,
        state.stop_price,
        state.post_only,
        state.expire_time,
        created_at,
        state.updated_at or created_at,
    )


# Fills of orders placed longer ago than this are replays (restart, rebuild), not latency.
_FILL_LATENCY_HORIZON_S = 60.0


def _observe_fill_latency(orders: dict[str, OrderState], batch: ReducedBatch) -> None:
    """Place-to-fill-visible: from the request's time to this commit, for taker fills."""
    now = datetime.now(UTC)
    for new in batch.fills:
        if new.fill.liquidity != "TAKER":
            continue
        state = orders.get(new.order_id)
        if state is None or state.created_at is None:
            continue
        seconds = (now - state.created_at).total_seconds()
        if 0 <= seconds < _FILL_LATENCY_HORIZON_S:
            metrics.observe_place_to_fill_visible(state.instrument, seconds)


class _Sequences(NamedTuple):
    """The last order_seq, fill_seq and trade_seq written."""

    order: int
    fill: int
    trade: int


class PostgresViewBuilder(ProjectionBuilder):
    """Keeps `view_orders`, `view_order_fills` and `view_trades` from the log."""

    def __init__(
        self, pool: asyncpg.Pool, live: LiveFeeds | None = None, name: str = BUILDER_NAME
    ) -> None:
        self.name = name
        self._pool = pool
        self._live = live
        self._unpublished: list[OrderUpdate] = []
        self._sequences = _Sequences(0, 0, 0)

    async def migrate(self) -> None:
        async with self._pool.acquire() as connection:
            await migrate(connection)

    async def load_checkpoint(self) -> LogPosition | None:
        row = await self._pool.fetchrow(_LAST_SEQUENCES)
        assert row is not None
        self._sequences = _Sequences(row[0], row[1], row[2])
        return await load_checkpoint(self._pool, self.name)

    async def apply_batch(self, events: Sequence[RecordedEvent]) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            # The view is derived from the log: a batch lost to a database crash comes back
            # with its checkpoint (same transaction), so the commit need not wait for fsync.
            await connection.execute("SET LOCAL synchronous_commit TO OFF")
            rows = await connection.fetch(_SELECT_ORDERS, _order_ids_of(events))
            reducer = OrdersReducer(
                {row["order_id"]: _state_from_row(row) for row in rows},
                collect_updates=(False if self._live is None else self._live.has_order_subscribers),
            )
            for event in events:
                reducer.apply(event)
            batch = reducer.finish()
            sequences = await self._write(connection, reducer.orders, batch, self._sequences)
            await connection.execute(
                _SAVE_CHECKPOINT, self.name, ev.position_token(events[-1].position)
            )
        # Only a committed batch moves the counters (a failed one is re-applied after a
        # restart, which reloads them).
        self._sequences = sequences
        self._unpublished = batch.order_updates
        _observe_fill_latency(reducer.orders, batch)

    async def after_commit(self) -> None:
        updates, self._unpublished = self._unpublished, []
        if self._live is None:
            return
        for update in updates:
            self._live.publish_order_update(update)

    @staticmethod
    async def _write(
        connection: asyncpg.Connection,
        orders: dict[str, OrderState],
        batch: ReducedBatch,
        sequences: _Sequences,
    ) -> _Sequences:
        """Write a reduced batch; return the row counters after it."""
        order_seq, fill_seq, trade_seq = sequences
        if batch.created_order_ids:
            await connection.executemany(
                _INSERT_ORDER,
                [
                    (*_row_of(orders[order_id]), order_seq + index)
                    for index, order_id in enumerate(batch.created_order_ids, start=1)
                ],
            )
        if batch.changed_order_ids:
            await connection.executemany(
                _UPDATE_ORDER, [_row_of(orders[order_id]) for order_id in batch.changed_order_ids]
            )
        if batch.fills:
            await connection.executemany(
                _INSERT_FILL,
                [
                    (
                        new.order_id,
                        new.fill.trade_id,
                        new.fill.price,
                        new.fill.quantity,
                        new.fill.liquidity,
                        new.fill.executed_at,
                        fill_seq + index,
                    )
                    for index, new in enumerate(batch.fills, start=1)
                ],
            )
        if batch.trades:
            await connection.executemany(
                _INSERT_TRADE,
                [
                    (
                        trade.instrument,
                        trade.trade_id,
                        trade.price,
                        trade.quantity,
                        trade.maker_order_id,
                        trade.taker_order_id,
                        trade.taker_side,
                        trade.maker_user_id,
                        trade.taker_user_id,
                        trade.executed_at,
                        trade.position,
                        trade_seq + index,
                    )
                    for index, trade in enumerate(batch.trades, start=1)
                ],
            )
        return _Sequences(
            order_seq + len(batch.created_order_ids),
            fill_seq + len(batch.fills),
            trade_seq + len(batch.trades),
        )
