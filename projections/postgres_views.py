"""The PostgreSQL views builder: orders (with fills and status), trades (with fees),
balances, the ledger and instrument statuses, via asyncpg.

Each batch is one transaction: load the orders and the balances the batch touches, reduce
the events over them (projections.order_reducer and projections.balance_reducer, pure),
write the new and changed rows, the fills, the trades, the balances, the ledger entries and
the statuses, and upsert this builder's checkpoint in `projection_checkpoints`. A crash anywhere
leaves either the whole batch with its checkpoint or neither, so a restart applies nothing
twice (which is also why the commit can be asynchronous: a batch lost to a database crash
is lost with its checkpoint and simply applied again). After the commit the order updates
go to the live feeds.

When a batch cannot be written (PostgreSQL refuses a value, say a NUL character in a text
field), `locate_failure` names the event: it writes prefixes of the failing transaction
and rolls each back, halving the range each time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg

from projections import log_events as ev
from projections.balance_reducer import (
    MONEY_EVENT_TYPES,
    BalancesReducer,
    BalanceState,
    NewEntry,
    touched_keys,
)
from projections.builder import ProjectionBuilder
from projections.live import LiveFeeds
from projections.order_reducer import OrdersReducer, OrderState, ReducedBatch
from projections.postgres_schema import CHECKPOINTS_TABLE, PgConnection, drop_views, migrate
from projections.views import OrderUpdate
from server.eventstore.port import LogPosition, RecordedEvent
from server.log_contract import layout as streams
from server.log_contract import records as rec
from server.observability import metrics

__all__ = ["PostgresViewBuilder", "drop_views", "load_checkpoint", "migrate"]

BUILDER_NAME = "postgres-views"
_STATUS_CHANGED = rec.InstrumentStatusChanged.__name__

# (column, type) of view_orders rows as the builder writes them.
_ORDER_COLUMNS_TYPED = (
    ("order_id", "text"),
    ("client_order_id", "text"),
    ("user_id", "text"),
    ("instrument", "text"),
    ("side", "text"),
    ("type", "text"),
    ("price", "numeric"),
    ("quantity", "numeric"),
    ("filled_quantity", "numeric"),
    ("filled_notional", "numeric"),
    ("stage", "text"),
    ("final_status", "text"),
    ("status", "text"),
    ("reason", "text"),
    ("time_in_force", "text"),
    ("stop_price", "numeric"),
    ("post_only", "boolean"),
    ("expire_time", "timestamptz"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)
_ORDER_COLUMNS = tuple(column for column, _ in _ORDER_COLUMNS_TYPED)
_FILL_COLUMNS_TYPED = (
    ("order_id", "text"),
    ("trade_id", "text"),
    ("price", "numeric"),
    ("quantity", "numeric"),
    ("liquidity", "text"),
    ("executed_at", "timestamptz"),
    ("fill_seq", "bigint"),
)
_TRADE_COLUMNS_TYPED = (
    ("instrument", "text"),
    ("trade_id", "text"),
    ("price", "numeric"),
    ("quantity", "numeric"),
    ("maker_order_id", "text"),
    ("taker_order_id", "text"),
    ("taker_side", "text"),
    ("maker_user_id", "text"),
    ("taker_user_id", "text"),
    ("executed_at", "timestamptz"),
    ("position", "text"),
    ("buyer_fee", "numeric"),
    ("seller_fee", "numeric"),
    ("fee_asset", "text"),
    ("trade_seq", "bigint"),
)
_BALANCE_COLUMNS_TYPED = (
    ("user_id", "text"),
    ("asset", "text"),
    ("available", "numeric"),
    ("held", "numeric"),
    ("updated_at", "timestamptz"),
    ("position", "text"),
)
_ENTRY_COLUMNS_TYPED = (
    ("entry_id", "bigint"),
    ("user_id", "text"),
    ("asset", "text"),
    ("cause", "text"),
    ("available_change", "numeric"),
    ("held_change", "numeric"),
    ("reference", "text"),
    ("at", "timestamptz"),
    ("position", "text"),
    ("entry_index", "integer"),
)
_STATUS_COLUMNS_TYPED = (
    ("instrument", "text"),
    ("status", "text"),
    ("updated_at", "timestamptz"),
    ("position", "text"),
)


def _unnest(columns_typed: Sequence[tuple[str, str]], first_parameter: int) -> str:
    """`unnest($n::t1[], $n+1::t2[], ...) AS u(c1, c2, ...)`: a whole batch of rows as one
    parameter per column, so one statement writes them all."""
    arrays = ", ".join(
        f"${index}::{kind}[]"
        for index, (_, kind) in enumerate(columns_typed, start=first_parameter)
    )
    names = ", ".join(column for column, _ in columns_typed)
    return f"unnest({arrays}) AS u({names})"


def _insert_sql(table: str, columns_typed: Sequence[tuple[str, str]], first_parameter: int) -> str:
    names = ", ".join(column for column, _ in columns_typed)
    unnest = _unnest(columns_typed, first_parameter)
    return f"INSERT INTO {table} ({names}) SELECT {names} FROM {unnest}"


SELECT_ORDERS = f"SELECT {', '.join(_ORDER_COLUMNS)} FROM view_orders WHERE order_id = ANY($1)"

_NEW_ORDER_COLUMNS = (*_ORDER_COLUMNS_TYPED, ("order_seq", "bigint"))


def _write_batch_sql() -> str:
    """All of a batch's writes, checkpoint included, as one statement (data-modifying CTEs):
    one round trip instead of one per table. Its parts touch disjoint rows (new orders are
    inserted, existing ones updated), so that they run on one snapshot changes nothing.
    Parameters: one array per column of new orders, changed orders, fills, trades,
    balances, ledger entries and instrument statuses, in that order (empty arrays when the
    batch has none), then the checkpoint's name and position."""
    changed_at = 1 + len(_NEW_ORDER_COLUMNS)
    fills_at = changed_at + len(_ORDER_COLUMNS_TYPED)
    trades_at = fills_at + len(_FILL_COLUMNS_TYPED)
    balances_at = trades_at + len(_TRADE_COLUMNS_TYPED)
    entries_at = balances_at + len(_BALANCE_COLUMNS_TYPED)
    statuses_at = entries_at + len(_ENTRY_COLUMNS_TYPED)
    checkpoint_at = statuses_at + len(_STATUS_COLUMNS_TYPED)
    balance_names = ", ".join(column for column, _ in _BALANCE_COLUMNS_TYPED)
    status_names = ", ".join(column for column, _ in _STATUS_COLUMNS_TYPED)
    upsert_balances = (
        f"INSERT INTO view_balances ({balance_names}) SELECT {balance_names}"
        f" FROM {_unnest(_BALANCE_COLUMNS_TYPED, balances_at)}"
        " ON CONFLICT (user_id, asset) DO UPDATE SET available = EXCLUDED.available,"
        " held = EXCLUDED.held, updated_at = EXCLUDED.updated_at, position = EXCLUDED.position"
    )
    # A replayed event's entries are already there (the reducer skips it anyway).
    insert_entries = (
        f"{_insert_sql('view_ledger_entries', _ENTRY_COLUMNS_TYPED, entries_at)}"
        " ON CONFLICT (position, entry_index) DO NOTHING"
    )
    upsert_statuses = (
        f"INSERT INTO view_instrument_status ({status_names}) SELECT {status_names}"
        f" FROM {_unnest(_STATUS_COLUMNS_TYPED, statuses_at)}"
        " ON CONFLICT (instrument) DO UPDATE SET status = EXCLUDED.status,"
        " updated_at = EXCLUDED.updated_at, position = EXCLUDED.position"
    )
    update_orders = (
        "UPDATE view_orders AS o SET "
        + ", ".join(f"{column} = u.{column}" for column in _ORDER_COLUMNS[1:])
        + f" FROM {_unnest(_ORDER_COLUMNS_TYPED, changed_at)} WHERE o.order_id = u.order_id"
    )
    return (
        f"WITH new_orders AS ({_insert_sql('view_orders', _NEW_ORDER_COLUMNS, 1)}),\n"
        f"     changed_orders AS ({update_orders}),\n"
        f"     new_fills AS ({_insert_sql('view_order_fills', _FILL_COLUMNS_TYPED, fills_at)}),\n"
        f"     new_trades AS ({_insert_sql('view_trades', _TRADE_COLUMNS_TYPED, trades_at)}),\n"
        f"     balances AS ({upsert_balances}),\n"
        f"     entries AS ({insert_entries}),\n"
        f"     statuses AS ({upsert_statuses}),\n"
        f"     checkpoint AS (INSERT INTO {CHECKPOINTS_TABLE} (name, position, updated_at)"
        f" VALUES (${checkpoint_at}, ${checkpoint_at + 1}, now()) ON CONFLICT (name) DO UPDATE"
        " SET position = EXCLUDED.position, updated_at = now())\n"
        "SELECT 1"
    )


_WRITE_BATCH = _write_batch_sql()


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """`rows` transposed into one list per column (`width` empty lists for no rows)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


_LAST_SEQUENCES = (
    "SELECT (SELECT coalesce(max(order_seq), 0) FROM view_orders),"
    " (SELECT coalesce(max(fill_seq), 0) FROM view_order_fills),"
    " (SELECT coalesce(max(trade_seq), 0) FROM view_trades),"
    " (SELECT coalesce(max(entry_id), 0) FROM view_ledger_entries)"
)
SELECT_BALANCES = (
    "SELECT b.user_id, b.asset, b.available, b.held, b.updated_at, b.position"
    " FROM view_balances AS b JOIN unnest($1::text[], $2::text[]) AS k(user_id, asset)"
    " ON b.user_id = k.user_id AND b.asset = k.asset"
)
# Every statement of a view batch reaches its rows by key. On a view grown since its last
# ANALYZE the planner read the whole of view_orders for `order_id = ANY (the batch's ids)`,
# comparing each row with each id: a batch cost more the longer the exchange ran, and that
# scan was about a third of PostgreSQL's CPU per order in `bench.service`.
BEGIN_VIEW_BATCH = "BEGIN; SET LOCAL synchronous_commit TO OFF; SET LOCAL enable_seqscan TO OFF"


async def load_checkpoint(pool: asyncpg.Pool, name: str) -> LogPosition | None:
    token = await pool.fetchval(f"SELECT position FROM {CHECKPOINTS_TABLE} WHERE name = $1", name)
    return None if token is None else LogPosition.parse(token)


def _order_ids_of(events: Sequence[RecordedEvent]) -> list[str]:
    """Every order a batch may touch: the orders whose streams it has events of (the log
    keeps every event about an order in its `order-<id>` stream)."""
    order_ids = {streams.order_id_of_stream(event.stream) for event in events}
    return sorted(order_id for order_id in order_ids if order_id is not None)


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
    """The last order_seq, fill_seq, trade_seq and ledger entry_id written."""

    order: int
    fill: int
    trade: int
    entry: int


class _MoneyBatch(NamedTuple):
    """A batch's balance changes, ledger entries and instrument statuses."""

    balances: list[BalanceState]
    entries: list[NewEntry]
    statuses: list[tuple[str, str, datetime, str]]


async def _reduce_money(connection: PgConnection, events: Sequence[RecordedEvent]) -> _MoneyBatch:
    """Fold the batch's money events over the balances they touch (loaded first) and take
    its instrument status changes (the last one per instrument wins)."""
    money: list[tuple[rec.LogRecord, RecordedEvent]] = []
    statuses: dict[str, tuple[str, str, datetime, str]] = {}
    for event in events:
        if event.type in MONEY_EVENT_TYPES:
            money.append((ev.record_of(event), event))
        elif event.type == _STATUS_CHANGED:
            changed = ev.record_of(event)
            assert isinstance(changed, rec.InstrumentStatusChanged)
            status = ev.status_view(changed, event.position)
            statuses[status.instrument] = (
                status.instrument,
                status.status,
                status.updated_at,
                status.position,
            )
    if not money:
        return _MoneyBatch([], [], list(statuses.values()))
    keys = sorted({key for record, _ in money for key in touched_keys(record)})
    rows = await connection.fetch(
        SELECT_BALANCES, [user for user, _ in keys], [asset for _, asset in keys]
    )
    reducer = BalancesReducer(
        {
            (row["user_id"], row["asset"]): BalanceState(
                row["user_id"],
                row["asset"],
                row["available"],
                row["held"],
                row["updated_at"],
                LogPosition.parse(row["position"]),
            )
            for row in rows
        }
    )
    for record, event in money:
        reducer.apply_record(record, event)
    reduced = reducer.take()
    return _MoneyBatch(
        [reducer.balances[key] for key in reduced.changed],
        reduced.entries,
        list(statuses.values()),
    )


class PostgresViewBuilder(ProjectionBuilder):
    """Keeps `view_orders`, `view_order_fills`, `view_trades`, `view_balances`,
    `view_ledger_entries` and `view_instrument_status` from the log."""

    def __init__(
        self, pool: asyncpg.Pool, live: LiveFeeds | None = None, name: str = BUILDER_NAME
    ) -> None:
        self.name = name
        self._pool = pool
        self._live = live
        self._unpublished: list[OrderUpdate] = []
        self._sequences = _Sequences(0, 0, 0, 0)

    async def migrate(self) -> None:
        async with self._pool.acquire() as connection:
            await migrate(connection)

    async def load_checkpoint(self) -> LogPosition | None:
        row = await self._pool.fetchrow(_LAST_SEQUENCES)
        assert row is not None
        self._sequences = _Sequences(row[0], row[1], row[2], row[3])
        return await load_checkpoint(self._pool, self.name)

    async def apply_batch(self, events: Sequence[RecordedEvent]) -> None:
        await self._apply(events, commit=True)

    async def locate_failure(self, events: Sequence[RecordedEvent]) -> int | None:
        """Bisect over prefixes of `events`, each written and rolled back: the first event
        whose prefix fails (None if the whole of `events` goes through now)."""
        if not await self._fails(events):
            return None
        good, bad = 0, len(events)  # events[:good] goes through, events[:bad] fails
        while bad - good > 1:
            middle = (good + bad) // 2
            if await self._fails(events[:middle]):
                bad = middle
            else:
                good = middle
        return bad - 1

    async def _fails(self, events: Sequence[RecordedEvent]) -> bool:
        try:
            await self._apply(events, commit=False)
        except Exception:
            return True
        return False

    async def _apply(self, events: Sequence[RecordedEvent], *, commit: bool) -> None:
        """Reduce and write `events` with the checkpoint in one transaction; committed,
        or (`commit=False`, to learn whether it can be written) rolled back."""
        async with self._pool.acquire() as connection:
            # The view is derived from the log: a batch lost to a database crash comes back
            # with its checkpoint (same transaction), so the commit need not wait for fsync.
            # BEGIN and the settings go in one round trip (asyncpg's transaction() takes two).
            try:
                await connection.execute(BEGIN_VIEW_BATCH)
                rows = await connection.fetch(SELECT_ORDERS, _order_ids_of(events))
                reducer = OrdersReducer(
                    {row["order_id"]: _state_from_row(row) for row in rows},
                    collect_updates=(
                        False if self._live is None else self._live.has_order_subscribers
                    ),
                )
                for event in events:
                    reducer.apply(event)
                batch = reducer.finish()
                money = await _reduce_money(connection, events)
                sequences = await self._write(
                    connection,
                    reducer.orders,
                    batch,
                    money,
                    self._sequences,
                    (self.name, ev.position_token(events[-1].position)),
                )
                await connection.execute("COMMIT" if commit else "ROLLBACK")
            except BaseException:
                # Always: cancelled inside a statement, the connection does not know yet
                # that it is in a transaction. If it cannot roll back (broken, or still
                # busy cancelling), it is closed: the server rolls back, and the pool
                # replaces it instead of logging an error about an open transaction.
                try:
                    await connection.execute("ROLLBACK")
                except Exception:
                    connection.terminate()
                raise
        if not commit:
            return
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
        connection: PgConnection,
        orders: dict[str, OrderState],
        batch: ReducedBatch,
        money: _MoneyBatch,
        sequences: _Sequences,
        checkpoint: tuple[str, str],
    ) -> _Sequences:
        """Write a reduced batch and the builder's checkpoint (one statement); return the
        row counters after it."""
        order_seq, fill_seq, trade_seq, entry_id = sequences
        new_orders = [
            (*_row_of(orders[order_id]), order_seq + index)
            for index, order_id in enumerate(batch.created_order_ids, start=1)
        ]
        changed_orders = [_row_of(orders[order_id]) for order_id in batch.changed_order_ids]
        new_fills = [
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
        ]
        new_trades = [
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
                trade.buyer_fee,
                trade.seller_fee,
                trade.fee_asset,
                trade_seq + index,
            )
            for index, trade in enumerate(batch.trades, start=1)
        ]
        balances = [
            (
                state.user_id,
                state.asset,
                state.available,
                state.held,
                state.updated_at,
                ev.position_token(state.position),
            )
            for state in money.balances
        ]
        entries = [
            (
                entry_id + number,
                entry.user_id,
                entry.asset,
                entry.cause,
                entry.available_change,
                entry.held_change,
                entry.reference,
                entry.at,
                entry.position,
                entry.index,
            )
            for number, entry in enumerate(money.entries, start=1)
        ]
        await connection.execute(
            _WRITE_BATCH,
            *_columns(new_orders, len(_NEW_ORDER_COLUMNS)),
            *_columns(changed_orders, len(_ORDER_COLUMNS_TYPED)),
            *_columns(new_fills, len(_FILL_COLUMNS_TYPED)),
            *_columns(new_trades, len(_TRADE_COLUMNS_TYPED)),
            *_columns(balances, len(_BALANCE_COLUMNS_TYPED)),
            *_columns(entries, len(_ENTRY_COLUMNS_TYPED)),
            *_columns(money.statuses, len(_STATUS_COLUMNS_TYPED)),
            *checkpoint,
        )
        return _Sequences(
            order_seq + len(batch.created_order_ids),
            fill_seq + len(batch.fills),
            trade_seq + len(batch.trades),
            entry_id + len(money.entries),
        )
